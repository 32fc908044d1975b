"""Fetch the Delta jars once with Spark's own resolver (Ivy), so later runs work offline.

Why not Maven: most Python users have none. Spark's ``spark.jars.packages`` resolves Maven coordinates
from the default public repository with nothing but the JVM that Spark needs anyway, and Ivy checks each
download against the checksum published beside it. The resolved jars are copied into one folder that
sessions pass as ``spark.jars`` (see ``mfr.session``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The artifacts a local session needs besides the pyspark wheel (antlr4 etc. ship with Spark).
DELTA_ARTIFACTS = ("delta-spark", "delta-storage")


class SetupError(RuntimeError):
    """A prerequisite is missing; the message names it in one line."""


def scala_binary(pyspark_version: str) -> str:
    """Scala binary version of a pip pyspark: 2.12 for Spark 3.x, 2.13 for Spark 4.x."""
    return "2.12" if pyspark_version.startswith("3.") else "2.13"


def delta_coordinates(delta_version: str, scala: str) -> str:
    return f"io.delta:delta-spark_{scala}:{delta_version}"


def jar_names(delta_version: str, scala: str) -> list[str]:
    return [f"delta-spark_{scala}-{delta_version}.jar", f"delta-storage-{delta_version}.jar"]


def check_java() -> str:
    """The ``java -version`` line; SetupError when no Java can be started."""
    java = shutil.which("java")
    if java is None:
        raise SetupError("Java not found: install a JDK that your Spark supports (17 for Spark 3.5 and 4.x) and put java on PATH")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SetupError(f"'{java} -version' failed: {out.stderr.strip()[:200]}")
    return (out.stderr or out.stdout).splitlines()[0]


def fetch_delta_jars(dest: Path, delta_version: str, scala: str) -> list[Path]:
    """Resolve Delta with Ivy into a scratch cache and copy its jars into ``dest``; returns the paths."""
    wanted = [dest / name for name in jar_names(delta_version, scala)]
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted):
        return wanted
    check_java()
    from pyspark.sql import SparkSession

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfr-ivy-") as ivy:
        spark = (
            SparkSession.builder.master("local[1]")
            .appName("mfr-fetch-jars")
            .config("spark.jars.packages", delta_coordinates(delta_version, scala))
            .config("spark.jars.ivy", ivy)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.catalogImplementation", "in-memory")  # no Derby files in the working folder
            .getOrCreate()
        )
        spark.stop()
        resolved = {p.name: p for p in Path(ivy, "jars").glob("io.delta_*.jar")}
        for target in wanted:
            source = resolved.get(f"io.delta_{target.name}")
            if source is None:
                raise SetupError(f"Ivy did not resolve {target.name} (got {sorted(resolved)}): is the package registry reachable?")
            tmp = target.with_suffix(".part")
            shutil.copyfile(source, tmp)
            tmp.replace(target)  # never a half-copied jar under the final name
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fetch the Delta jars for local sessions (no Maven needed)")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--delta-version", help="default: the installed delta-spark package's version")
    args = parser.parse_args(argv)
    try:
        from importlib import metadata

        import pyspark

        scala = scala_binary(pyspark.__version__)
        version = args.delta_version or metadata.version("delta-spark")
        for path in fetch_delta_jars(Path(args.dest), version, scala):
            print(f"jar: {path}")
    except SetupError as exc:
        print(f"mfr setup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
