"""Build steps pyproject.toml cannot express: shipped data files and the optional C kernel.

* ``prompts/`` and ``conf/`` of the checkout are copied into the package as ``mfr/_data/`` so that an
  installed wheel finds them (``mfr.resources``); the checkout keeps one copy of each file.
* The C kernel of the n-gram check is optional: without a compiler the build goes on and
  ``mfr.text.repetition`` uses its numpy path (same decisions). ``MFR_PURE_WHEEL=1`` leaves it out, for
  the pure ``py3-none-any`` wheel that runs on any cluster.
"""

import os
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

DATA = ("prompts", "conf")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for kind in DATA:
            target = Path(self.build_lib) / "mfr" / "_data" / kind
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / kind, target, ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "constraints"))


pure = os.environ.get("MFR_PURE_WHEEL") == "1"
ext = [] if pure else [Extension("mfr.text._ngram", ["lib/mfr/text/_ngram.c"], optional=True, extra_compile_args=["-O3"])]
setup(cmdclass={"build_py": BuildPyWithData}, ext_modules=ext)
