"""Shared prelude of the spark-submit entry points in this folder."""

import os
import sys

# Python puts this folder first on sys.path; jobs/select.py would then shadow the standard library's
# `select` module (used by subprocess and sockets). Take the folder off the path before importing more.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

try:
    from mfr.jobs import stage_main
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(_here), "lib"))
    from mfr.jobs import stage_main


def main(stage: str) -> None:
    sys.exit(stage_main(stage, sys.argv[1:]))
