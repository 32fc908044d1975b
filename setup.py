"""Only for the optional C kernel of the n-gram check; everything else is in pyproject.toml.

Without a C compiler the build goes on and mfr.text.repetition uses its numpy path (same decisions).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mfr.text._ngram", ["lib/mfr/text/_ngram.c"], optional=True,
                             extra_compile_args=["-O3"])])
