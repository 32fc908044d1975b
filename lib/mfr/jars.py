"""Fetch the Delta jars once with Spark's own resolver (Ivy), so later runs work offline.

Why not Maven: most Python users have none. Spark's ``spark.jars.packages`` resolves Maven coordinates
from the default public repository with nothing but the JVM that Spark needs anyway, and Ivy checks each
download against the checksum published beside it. The resolved jars are copied into one folder that
sessions pass as ``spark.jars`` (see ``mfr.session``), and the venv's own ``spark-submit`` gets them in its
``spark-defaults.conf`` (``--spark-defaults``): every set-up file ``make setup`` writes comes from here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

# The artifacts a local session needs besides the pyspark wheel (antlr4 etc. ship with Spark).
DELTA_ARTIFACTS = ("delta-spark", "delta-storage")
# Where Spark's resolver looks first, and where a failed fetch is diagnosed.
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


class SetupError(RuntimeError):
    """A prerequisite is missing; the message names it in one line."""


def scala_binary(pyspark_version: str) -> str:
    """Scala binary version of a pip pyspark: 2.12 for Spark 3.x, 2.13 for Spark 4.x."""
    return "2.12" if pyspark_version.startswith("3.") else "2.13"


def delta_artifact(delta_version: str, pyspark_version: str) -> str:
    """Delta's Maven artifact for a Spark: from Delta 4.1 on one build per Spark minor
    (``delta-spark_4.2_2.13``), before that one per Scala version (``delta-spark_2.13``)."""
    scala = scala_binary(pyspark_version)
    major, minor = (int(x) for x in delta_version.split(".")[:2])
    if (major, minor) >= (4, 1):
        return f"delta-spark_{'.'.join(pyspark_version.split('.')[:2])}_{scala}"
    return f"delta-spark_{scala}"


def delta_coordinates(delta_version: str, pyspark_version: str) -> str:
    return f"io.delta:{delta_artifact(delta_version, pyspark_version)}:{delta_version}"


def installed_delta_coordinates() -> str:
    """The Delta jar that the installed delta-spark and pyspark packages need."""
    from importlib import metadata

    import pyspark

    return delta_coordinates(metadata.version("delta-spark"), pyspark.__version__)


def jar_names(delta_version: str, pyspark_version: str) -> list[str]:
    return [f"{delta_artifact(delta_version, pyspark_version)}-{delta_version}.jar", f"delta-storage-{delta_version}.jar"]


def check_java() -> str:
    """The ``java -version`` line; SetupError when no Java can be started."""
    java = shutil.which("java")
    if java is None:
        raise SetupError("Java not found: install a JDK that your Spark supports (17 for Spark 3.5 and 4.x) and put java on PATH")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SetupError(f"'{java} -version' failed: {out.stderr.strip()[:200]}")
    return (out.stderr or out.stdout).splitlines()[0]


def fetch_delta_jars(dest: Path, delta_version: str, pyspark_version: str) -> list[Path]:
    """Resolve Delta with Ivy into a scratch cache and copy its jars into ``dest``; returns the paths."""
    wanted = [dest / name for name in jar_names(delta_version, pyspark_version)]
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted):
        return wanted
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfr-ivy-") as ivy:
        resolved = {p.name: p for p in _resolve(delta_coordinates(delta_version, pyspark_version), ivy)
                    if p.name.startswith("io.delta_")}
        for target in wanted:
            source = resolved.get(f"io.delta_{target.name}")
            if source is None:
                raise SetupError(f"Ivy did not resolve {target.name} (got {sorted(resolved)}): is the package registry reachable?")
            tmp = target.with_suffix(".part")
            shutil.copyfile(source, tmp)
            tmp.replace(target)  # never a half-copied jar under the final name
    return wanted


def _resolve(coordinates: str, ivy: str) -> list[Path]:
    """The jars of ``coordinates`` and their dependencies, resolved by a throwaway local session into ``ivy``."""
    check_java()
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]").appName("mfr-fetch-jars")
        .config("spark.jars.packages", coordinates).config("spark.jars.ivy", ivy)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.catalogImplementation", "in-memory")  # no Derby files in the working folder
    )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM exits when Ivy fails: pyspark only says the gateway is gone
        raise unresolved(coordinates, exc) from exc
    spark.stop()
    return sorted(Path(ivy, "jars").glob("*.jar"))


def published_versions(coordinates: str, repo: str = MAVEN_CENTRAL, timeout: float = 15) -> list[str] | None:
    """The versions ``repo`` lists for the artifact of ``group:artifact:version`` (its maven-metadata.xml),
    [] where it has no such artifact; None where it does not answer."""
    group, artifact, _ = coordinates.split(":")
    url = f"{repo.rstrip('/')}/{group.replace('.', '/')}/{artifact}/maven-metadata.xml"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return [] if exc.code == 404 else None
    except (OSError, ValueError):
        return None
    return re.findall(r"<version>\s*([^<\s]+)\s*</version>", body)


def _release(version: str) -> tuple[int, ...] | None:
    """``4.4.0`` → (4, 4, 0); None for a pre-release (``4.3.0-rc1``), never suggested."""
    return tuple(int(x) for x in version.split(".")) if re.fullmatch(r"\d+(\.\d+)*", version) else None


def unpublished(coordinates: str, repo: str = MAVEN_CENTRAL) -> SetupError | None:
    """Why ``coordinates`` cannot be fetched from ``repo`` at all, in one line (a version it does not publish,
    e.g. a delta-spark release on PyPI whose jars are not on Maven Central, with the newest published one
    named; a repository that does not answer); None where it publishes them."""
    group, artifact, version = coordinates.split(":")
    listed = published_versions(coordinates, repo)
    if listed is None:
        return SetupError(f"could not fetch {coordinates}: {repo} did not answer (is the package registry reachable?)")
    if version in listed:
        return None
    releases = sorted((r, v) for v in listed if (r := _release(v)) is not None)
    if not releases:
        return SetupError(f"{coordinates} is not published at {repo} (no release of {group}:{artifact} is)")
    wanted = _release(version)
    older = [v for r, v in releases if wanted is None or r <= wanted]
    suggest = (older or [releases[-1][1]])[-1]
    what = f"{coordinates} is not published at {repo} (its newest release there is {releases[-1][1]})"
    if group != "io.delta":
        return SetupError(what)
    return SetupError(f"{what}: install a delta-spark whose jars are, e.g. pip install 'delta-spark=={suggest}'")


def unresolved(coordinates: str, cause: BaseException | None = None, repo: str = MAVEN_CENTRAL) -> SetupError:
    """Why Spark's resolver could not fetch ``coordinates``, in one line: ``unpublished``'s reason, or else
    Spark's own first line (its resolver's report is printed above it)."""
    missing = unpublished(coordinates, repo)
    if missing is not None:
        return missing
    first = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else "no detail"
    return SetupError(f"could not fetch {coordinates}, which {repo} publishes ({first[:300]}): see the resolver's report above")


def fetch_connect_jar(dest: Path) -> Path | None:
    """The Spark Connect server for the pip pyspark, into ``dest``: pyspark 4.x ships it (None: nothing to
    fetch); for 3.5 it is ``org.apache.spark:spark-connect_2.12`` of the same version. Tests start a local
    server from it (Databricks' standard access mode on LTS runtimes is Spark 3.5 over Connect)."""
    import pyspark

    if any(Path(pyspark.__file__).parent.joinpath("jars").glob("spark-connect_*.jar")):
        return None
    version = pyspark.__version__
    name = f"spark-connect_{scala_binary(version)}-{version}.jar"
    target = dest / name
    if target.is_file() and target.stat().st_size > 0:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfr-ivy-") as ivy:
        found = [p for p in _resolve(f"org.apache.spark:spark-connect_{scala_binary(version)}:{version}", ivy)
                 if p.name.endswith(name)]
        if not found:
            raise SetupError(f"Ivy did not resolve {name}: is the package registry reachable?")
        tmp = target.with_suffix(".part")
        shutil.copyfile(found[0], tmp)
        tmp.replace(target)
    return target


def spark_hadoop_version() -> str:
    """The Hadoop version inside the pip pyspark (``hadoop-client-api-<v>.jar``): hadoop-aws must match it."""
    import pyspark

    found = sorted(Path(pyspark.__file__).parent.joinpath("jars").glob("hadoop-client-api-*.jar"))
    if not found:
        raise SetupError("no hadoop-client-api jar inside pyspark: cannot tell which hadoop-aws matches")
    return found[0].name[len("hadoop-client-api-"):-len(".jar")]


def fetch_s3a_jars(dest: Path) -> list[Path]:
    """hadoop-aws for the pyspark's Hadoop and its AWS SDK bundle (hundreds of MB: fetched once, kept in
    ``dest``), for sessions that read and write ``s3a://``."""
    version = spark_hadoop_version()
    marker = dest / f".hadoop-aws-{version}"
    if marker.is_file():
        return sorted(dest.glob("*.jar"))
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfr-ivy-") as ivy:
        jars = _resolve(f"org.apache.hadoop:hadoop-aws:{version}", ivy)
        if not any("hadoop-aws" in p.name for p in jars):
            raise SetupError(f"Ivy did not resolve hadoop-aws {version}: is the package registry reachable?")
        for source in jars:
            tmp = dest / (source.name + ".part")
            shutil.copyfile(source, tmp)
            tmp.replace(dest / source.name)
    marker.write_text(version + "\n")
    return sorted(dest.glob("*.jar"))


def write_spark_defaults(jars: Path) -> Path:
    """Make the venv's own ``spark-submit`` Delta-ready: jars on the driver classpath, the venv's Python."""
    from pyspark.find_spark_home import _find_spark_home

    from mfr.session import REDACTION_REGEX

    conf_dir = Path(_find_spark_home()) / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    jar_list = ",".join(sorted(str(p.resolve()) for p in jars.glob("*.jar")))
    lines = [
        "# Written by `make setup` (mfr.jars.write_spark_defaults)",
        f"spark.jars {jar_list}",
        "spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog",
        f"spark.pyspark.python {sys.executable}",
        f"spark.pyspark.driver.python {sys.executable}",
        f"spark.redaction.regex {REDACTION_REGEX}",
    ]
    target = conf_dir / "spark-defaults.conf"
    target.write_text("\n".join(lines) + "\n")
    # Spark's start-up warnings (loopback hostname, native Hadoop) drown the pipeline's own output.
    (conf_dir / "log4j2.properties").write_text(
        "rootLogger.level = error\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex\n"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fetch the Delta jars for local sessions (no Maven needed)")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--delta-version", help="default: the installed delta-spark package's version")
    parser.add_argument("--s3a", action="store_true", help="fetch hadoop-aws (and its AWS SDK) for s3a:// instead")
    parser.add_argument("--connect", action="store_true",
                        help="fetch the Spark Connect server jar into DEST/connect instead (pyspark 3.5; 4.x ships it)")
    parser.add_argument("--spark-defaults", action="store_true",
                        help="instead: make this venv's spark-submit Delta-ready with the jars in DEST (spark-defaults.conf)")
    args = parser.parse_args(argv)
    if args.spark_defaults:
        print(f"wrote {write_spark_defaults(Path(args.dest))}")
        return 0
    try:
        from importlib import metadata

        import pyspark

        if args.s3a:
            for path in fetch_s3a_jars(Path(args.dest)):
                print(f"jar: {path}")
            return 0
        if args.connect:
            connect = fetch_connect_jar(Path(args.dest) / "connect")
            print(f"jar: {connect}" if connect else "jar: the Spark Connect server ships with this pyspark")
            return 0
        version = args.delta_version or metadata.version("delta-spark")
        for path in fetch_delta_jars(Path(args.dest), version, pyspark.__version__):
            print(f"jar: {path}")
    except SetupError as exc:
        print(f"mfr setup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
