"""The stages of the pipeline, once: name, output table, input tables, and the function that runs it.

The runner, the CLI, the report, the notebooks helper and the table store all read this list; adding a
stage means one module and one entry (here, or ``register()`` from elsewhere): the runner has no stage names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mfr.config import Config
    from mfr.lakehouse import Lakehouse
    from mfr.stages.common import StageContext, StageOutput


@dataclass(frozen=True)
class Location:
    """A place outside the tables a stage reads or writes: executors must reach it, and it is checked before
    any table is written (``check``: "readable", "writable", or None for reach only)."""

    path: str
    setting: str  # the config key that names it, for one-line errors
    check: str | None = None


def _resolve(entry: str) -> Callable[..., Any]:
    module, func = entry.split(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return fn


@dataclass(frozen=True)
class Stage:
    """Everything the runner needs about a stage. Functions are named ``"module:function"`` (imported when
    first used, so the registry imports no stage code):

    * ``entry(ctx: StageContext) -> StageOutput``: the stage itself;
    * ``inputs_of(cfg, published) -> list[str]``: the tables it reads when they depend on config or on what
      has been published (``published(table)``: a version or None); else ``inputs``;
    * ``locations(cfg) -> list[Location]``: folders outside the tables it reads or writes;
    * ``pinned(cfg, lakehouse) -> {table: version}``: input versions the config chooses (else the published);
    * ``replay(cfg, earlier_run) -> cfg``: the config a ``--from-run`` rerun takes from the earlier run (its
      input versions are pinned in any case);
    * ``settings``: the config sections (dotted) whose values decide its output: a run whose sections and code
      equal its last succeeded run's may be incremental (``mfr.incremental``);
    * ``incremental``: how a run may reuse the last one: ``"rows"`` (only input rows changed since, by
      ``sample_key``), ``"files"`` (only dump subsets whose files changed), ``"whole"`` (nothing or everything);
      None: every run recomputes;
    * ``also_stale(lakehouse, cfg, inputs, last_output_version) -> DataFrame | None``: keys a ``rows`` stage
      computes again in an incremental run whatever their input (distill's regenerated rows).
    """

    name: str
    table: str  # output table inside the schema
    inputs: tuple[str, ...]  # tables read, pinned to a version for the whole run
    entry: str
    inputs_of: str | None = None
    locations: str | None = None
    pinned: str | None = None
    replay: str | None = None
    settings: tuple[str, ...] = ()
    incremental: str | None = None
    also_stale: str | None = None

    @property
    def fn(self) -> Callable[[StageContext], StageOutput]:
        return _resolve(self.entry)

    def input_tables(self, cfg: Config, published: Callable[[str], int | None]) -> list[str]:
        return list(_resolve(self.inputs_of)(cfg, published)) if self.inputs_of else list(self.inputs)

    def outside_locations(self, cfg: Config) -> list[Location]:
        return list(_resolve(self.locations)(cfg)) if self.locations else []

    def chosen_versions(self, cfg: Config, lakehouse: Lakehouse) -> dict[str, int]:
        return dict(_resolve(self.pinned)(cfg, lakehouse)) if self.pinned else {}

    def stale_keys(self, lakehouse: Lakehouse, cfg: Config, inputs: dict[str, int], last: int) -> Any:
        return _resolve(self.also_stale)(lakehouse, cfg, inputs, last) if self.also_stale else None

    def replay_config(self, cfg: Config, earlier: dict[str, Any]) -> Config:
        return _resolve(self.replay)(cfg, earlier) if self.replay else cfg


STAGES: list[Stage] = [
    Stage("collect", "collected", (), "mfr.stages.collect:collect", locations="mfr.stages.collect:locations",
          replay="mfr.stages.collect:replay_config", settings=("collection",), incremental="files"),
    Stage("clean", "cleaned", ("collected",), "mfr.stages.clean:clean", settings=("cleaning", "decontamination"),
          incremental="rows"),
    # distill reads cleaned once a clean run published it, else collected, unless configured
    Stage("distill", "distilled", ("cleaned",), "mfr.stages.distill:distill", inputs_of="mfr.stages.distill:input_tables",
          settings=("distillation", "selection.structure"), incremental="rows",
          also_stale="mfr.stages.distill:regeneration_keys"),
    Stage("select", "selected", ("distilled",), "mfr.stages.select:select", settings=("selection",), incremental="rows"),
    Stage("export", "exported", ("selected",), "mfr.stages.export:export", locations="mfr.stages.export:locations",
          pinned="mfr.stages.export:chosen_versions", settings=("export",), incremental="whole"),
]

# live views of the list (register() extends them in place: modules that imported them see a new stage)
NAMES: list[str] = [s.name for s in STAGES]
TABLES: dict[str, str] = {s.name: s.table for s in STAGES}
_BY_NAME = {s.name: s for s in STAGES}


def register(entry: Stage) -> None:
    """Add a stage after the others (``mfr run --stage all`` runs it last): one module and this call."""
    if entry.name in _BY_NAME or entry.name == "all" or entry.table in TABLES.values():
        raise ValueError(f"a stage named {entry.name!r} or writing {entry.table!r} is registered already")
    STAGES.append(entry)
    NAMES.append(entry.name)
    TABLES[entry.name] = entry.table
    _BY_NAME[entry.name] = entry


def unregister(name: str) -> None:
    """Remove a stage ``register()`` added (a notebook's or a test's stage, for a while); the built-in five stay."""
    entry = _BY_NAME.pop(name, None)
    if entry is None:
        return
    STAGES.remove(entry)
    NAMES.remove(name)
    TABLES.pop(name, None)


def stage(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(NAMES)}") from None


def stage_of_table(table: str) -> str | None:
    return next((s.name for s in STAGES if s.table == table), None)
