"""The stages of the pipeline, once: name, output table, input tables, and the function that runs it.

The runner, the CLI, the report, the notebooks helper and the table store all read this list; adding a
stage means adding one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mfr.stages.common import StageContext, StageOutput


@dataclass(frozen=True)
class Stage:
    name: str
    table: str  # output table inside the schema
    inputs: tuple[str, ...]  # tables read, pinned to a version for the whole run
    entry: str  # "module:function" taking a StageContext and returning a StageOutput

    @property
    def fn(self) -> Callable[[StageContext], StageOutput]:
        module, func = self.entry.split(":")
        fn: Callable[[StageContext], StageOutput] = getattr(importlib.import_module(module), func)
        return fn


STAGES: tuple[Stage, ...] = (
    Stage("collect", "collected", (), "mfr.stages.collect:collect"),
    Stage("clean", "cleaned", ("collected",), "mfr.stages.clean:clean"),
    # distill reads cleaned when it exists, else collected (see mfr.runner.input_tables)
    Stage("distill", "distilled", ("cleaned",), "mfr.stages.distill:distill"),
    Stage("select", "selected", ("distilled",), "mfr.stages.select:select"),
    Stage("export", "exported", ("selected",), "mfr.stages.export:export"),
)

NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
TABLES: dict[str, str] = {s.name: s.table for s in STAGES}
_BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(NAMES)}") from None


def stage_of_table(table: str) -> str | None:
    return next((s.name for s in STAGES if s.table == table), None)
