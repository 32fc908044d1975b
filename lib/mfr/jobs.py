"""The spark-submit entry point, inside the package: ``python -m mfr.jobs <stage> [mfr run arguments]``.

``jobs/<stage>.py`` in the checkout are three-line files over ``main`` (spark-submit wants a file); on a
cluster, submit one of them, or any file that calls ``mfr.jobs.main("<stage>")``. Databricks jobs call the
``mfr`` console script of the wheel with ``run --stage <stage> …`` instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mfr.cli import main as cli_main
from mfr.stages.registry import NAMES


def stage_main(stage: str, argv: Sequence[str]) -> int:
    """``<stage> [--config FILE] [--set k=v ...] [--from-run RUN_ID] [--json] [--strict]``, as ``mfr run``."""
    return cli_main(["run", "--stage", stage, *argv])


def main(stage: str | None = None) -> None:
    args = sys.argv[1:]
    if stage is None:
        if not args or args[0] not in (*NAMES, "all"):
            print(f"usage: python -m mfr.jobs {{{','.join((*NAMES, 'all'))}}} [--config FILE] [--set k=v ...]", file=sys.stderr)
            sys.exit(2)
        stage, args = args[0], args[1:]
    sys.exit(stage_main(stage, args))


if __name__ == "__main__":
    main()
