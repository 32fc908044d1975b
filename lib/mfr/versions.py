"""Which installed sets run, judged before a JVM starts: pip cannot tell.

Delta's jars are built for given Spark lines (a delta-spark that pip accepts beside a newer pyspark loads a
jar of another line and fails at its first write with a ``NoSuchMethodError``), and pyarrow's NumPy floor is
not in its metadata (pyarrow 26 refuses NumPy 1 at import). Pure functions on version strings; the session
(:mod:`mfr.session`) asks them at start, and the tests ask them of what pip resolves for each extra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Line = tuple[int, int]

# Spark lines each Delta release line publishes jars for (Maven Central, December 2026): delta-spark_2.12 and
# _2.13 up to 4.0, then one artifact per Spark line (delta-spark_4.1_2.13 …) from 4.1 on.
DELTA_SPARK_LINES: dict[Line, tuple[Line, ...]] = {
    (3, 0): ((3, 5),), (3, 1): ((3, 5),), (3, 2): ((3, 5),), (3, 3): ((3, 5),),
    (4, 0): ((4, 0),),
    (4, 1): ((4, 0), (4, 1)), (4, 2): ((4, 0), (4, 1)), (4, 3): ((4, 0), (4, 1)),
    (4, 4): ((4, 0), (4, 1), (4, 2)),
}

# Per supported Spark line: the pip extra that installs a tested set, and the Delta range it pins (the compat
# legs run these lines; 4.4.1 is on PyPI without jars on Maven Central).
EXTRAS: dict[Line, str] = {(3, 5): "spark35", (4, 0): "spark40", (4, 1): "spark41", (4, 2): "spark42"}
DELTA_RANGES: dict[Line, str] = {(3, 5): ">=3.3,<3.4", (4, 0): ">=4.0,<4.1", (4, 1): ">=4.3,<4.4",
                                 (4, 2): ">=4.4,<4.5,!=4.4.1"}

# Measured: pyarrow 25.0.1 imports with numpy 1.26, 26.0.0 raises "pyarrow requires NumPy 2.0 or newer".
PYARROW_NEEDS_NUMPY_2: tuple[int, ...] = (26,)


def release(version: str) -> tuple[int, ...]:
    """``4.2.1`` → (4, 2, 1); ``3.5.0.dev0`` and ``15.4.x-scala2.12`` keep their leading numbers."""
    numbers = re.match(r"\d+(?:\.\d+)*", version.strip())
    if not numbers:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(x) for x in numbers.group(0).split("."))


def line(version: str) -> Line:
    major, minor = (release(version) + (0,))[:2]
    return major, minor


def _name(spark: Line) -> str:
    return f"Spark {spark[0]}.{spark[1]}"


def _lines(lines: tuple[Line, ...]) -> str:
    names = [f"{a}.{b}" for a, b in lines]
    return "Spark " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def fix_for(spark: Line) -> str:
    """The command that installs a Delta built for ``spark`` (and the extra with the whole tested set)."""
    if spark not in DELTA_RANGES:
        return f"install a pyspark of a line mfr supports ({', '.join(_name(s) for s in EXTRAS)})"
    return f"pip install 'delta-spark{DELTA_RANGES[spark]}' (or the whole tested set: pip install 'mfr[{EXTRAS[spark]}]')"


def delta_problem(pyspark_version: str, delta_version: str, jar_spark: Line | None = None) -> str | None:
    """Why Delta ``delta_version`` cannot run on pyspark ``pyspark_version``, in one line; None when its jars
    are built for that Spark line, or when the Delta line is newer than this table (no verdict on what it does
    not know). ``jar_spark``: the line a jar file says it was built for (``delta-spark_4.2_2.13-…``)."""
    spark, delta = line(pyspark_version), line(delta_version)
    if jar_spark is not None and jar_spark != spark:
        return (f"the Delta {delta_version} jars are the {_name(jar_spark)} build but pyspark {pyspark_version} is "
                f"installed: fetch the matching ones (make setup, or python -m mfr.jars)")
    built_for = DELTA_SPARK_LINES.get(delta)
    if built_for is None or spark in built_for:
        return None
    return (f"delta-spark {delta_version} has no jars for {_name(spark)} (pyspark {pyspark_version} is installed; "
            f"Delta {delta[0]}.{delta[1]} is built for {_lines(built_for)}): {fix_for(spark)}")


def numpy_problem(pyarrow_version: str, numpy_version: str, pyspark_version: str | None = None) -> str | None:
    """Why pyarrow cannot import beside this numpy, in one line with the fix for the Spark line (Spark 3.5's
    pandas needs NumPy 1: an older pyarrow; 4.x: NumPy 2); None when they go together."""
    if release(pyarrow_version)[:1] < PYARROW_NEEDS_NUMPY_2 or release(numpy_version)[0] >= 2:
        return None
    first = ".".join(str(x) for x in PYARROW_NEEDS_NUMPY_2)
    spark_3 = pyspark_version is not None and release(pyspark_version)[0] < 4
    fix = f"pip install 'pyarrow<{first}'" if spark_3 else "pip install 'numpy>=2'"
    return f"pyarrow {pyarrow_version} needs NumPy 2 or newer but numpy {numpy_version} is installed: {fix}"


JAR = re.compile(r"delta-spark_(?:(?P<spark>\d+\.\d+)_)?\d+\.\d+-(?P<version>\d+\.\d+\.\d+)\.jar$")


def delta_jar(names: list[str]) -> tuple[str, Line | None] | None:
    """(Delta version, Spark line of the build when the name says one) of the delta-spark jar among ``names``."""
    for name in names:
        found = JAR.search(name.rsplit("/", 1)[-1])
        if found:
            return found["version"], line(found["spark"]) if found["spark"] else None
    return None


@dataclass(frozen=True)
class Installed:
    pyspark: str
    delta: str | None  # the Delta the session loads (its jars' version, else the delta-spark package's)
    jar_spark: Line | None
    pyarrow: str | None
    numpy: str | None

    def problems(self) -> list[str]:
        found = []
        if self.delta:
            found.append(delta_problem(self.pyspark, self.delta, self.jar_spark))
        if self.pyarrow and self.numpy:
            found.append(numpy_problem(self.pyarrow, self.numpy, self.pyspark))
        return [p for p in found if p]


def installed(jar_names: list[str], judge_delta: bool = True) -> Installed:
    """What this Python has: pyspark, the Delta of ``jar_names`` (else of the delta-spark package; none when
    ``judge_delta`` is off), pyarrow and numpy, from package metadata (nothing imported: a pyarrow that
    refuses its numpy is judged, not raised)."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    import pyspark

    jar = delta_jar(jar_names) if judge_delta else None
    delta, jar_spark = jar if jar else (version("delta-spark") if judge_delta else None, None)
    return Installed(pyspark.__version__, delta, jar_spark, version("pyarrow"), version("numpy"))
