"""Shared body of the spark-submit wrappers in jobs/: the same arguments as `mfr run`."""

from __future__ import annotations

from collections.abc import Sequence

from mfr.cli import main


def stage_main(stage: str, argv: Sequence[str]) -> int:
    """``spark-submit jobs/<stage>.py [--config FILE] [--set k=v ...] [--from-run RUN_ID]``."""
    return main(["run", "--stage", stage, *argv])
