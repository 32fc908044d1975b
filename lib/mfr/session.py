"""Spark session factory.

* On Databricks, or wherever a session is already active, the session is taken as it is: Delta and the
  catalog are the platform's, nothing is added.
* Otherwise (a laptop, CI, `spark-submit --master local…`), a session is built with Delta's extensions,
  the Delta jars fetched by ``make setup`` (offline), Hive support with an embedded Derby metastore, and
  the warehouse under ``lakehouse.warehouse`` so table names survive across processes.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mfr.resources import CHECKOUT

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from mfr.config import Config

REPO_ROOT = CHECKOUT  # where make setup puts .jars in a checkout

log = logging.getLogger(__name__)

# Spark masks values of matching conf keys in its UI and event logs; api keys included.
REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key|api[._-]?key|authorization"


def jars_dir() -> Path:
    return Path(os.environ.get("MFR_JARS_DIR", REPO_ROOT / ".jars"))


def delta_jars() -> list[str]:
    return sorted(glob.glob(str(jars_dir() / "*.jar")))


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def databricks_session(spark: SparkSession) -> bool:
    """On a Databricks runtime, or a Spark Connect client of one."""
    if on_databricks() or "databricks" in os.environ.get("SPARK_REMOTE", "").lower():
        return True
    return any(conf_value(spark, k) for k in ("spark.databricks.clusterUsageTags.clusterId", "spark.databricks.workspaceUrl"))


def _submitted() -> bool:
    """True inside a Python driver launched by spark-submit (the JVM already runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _local_confs(warehouse: Path, shuffle_partitions: int | None) -> dict[str, str]:
    warehouse = warehouse.resolve()
    confs = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(warehouse / "warehouse"),
        # Derby lives beside the warehouse, not in whatever folder the user happens to run from.
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={warehouse / 'metastore_db'};create=true"
        ),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        # Delta keeps the real schema in its log; the metastore's copy is a placeholder that Hive would
        # otherwise refuse to update on overwrite (a harmless but alarming ERROR in the log).
        "spark.hadoop.hive.metastore.disallow.incompatible.col.type.changes": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Spark 4 turned ANSI mode on by default, 3.5 has it off: the same rows on every leg need one setting
        "spark.sql.ansi.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Few files in a local Delta log: 50 snapshot partitions only cost task overhead.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.redaction.regex": REDACTION_REGEX,
        "spark.driver.memory": "3g",
    }
    if shuffle_partitions:
        confs["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    jars = delta_jars()
    if jars:
        confs["spark.jars"] = ",".join(jars)
    return confs


class MetastoreBusy(RuntimeError):
    """Another process holds the embedded (Derby) metastore of this lakehouse."""


def check_metastore_free(warehouse: Path) -> None:
    """Fail in one line, before any JVM starts, when another process has booted this lakehouse's Derby
    metastore (Derby admits one process; the JVM would otherwise retry for 20 s and print pages of traces).
    Derby holds an OS lock on ``dbex.lck`` while the database is booted; a lock we can take is a free db."""
    lock = warehouse / "metastore_db" / "dbex.lck"
    if not lock.exists():
        return
    from pyspark import SparkContext

    if SparkContext._gateway is not None:  # this process's own JVM may be the holder
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: let Derby say it
        return
    with open(lock, "r+b") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MetastoreBusy(
                f"another mfr command holds the embedded metastore of this lakehouse ({warehouse / 'metastore_db'}): "
                "one local command at a time; wait for it to finish, or point lakehouse.warehouse elsewhere"
            ) from None
        fcntl.lockf(fh, fcntl.LOCK_UN)


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (no SparkContext, no JVM on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


@contextlib.contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs started inside, so the Spark and Databricks UIs show which stage and step runs.
    A Spark Connect session has no job description: its jobs get a tag (``mfr-<words>``) instead."""
    if is_connect(spark):
        tag = "mfr-" + "-".join("".join(ch if ch.isalnum() else " " for ch in text).split())[:100]
        spark.addTag(tag)
        try:
            yield
        finally:
            spark.removeTag(tag)
        return
    sc = spark.sparkContext
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setJobDescription(previous)  # type: ignore[arg-type]  # None clears it (pyspark's stub says str)


def conf_value(spark: SparkSession, key: str, default: str | None = None) -> str | None:
    """A session setting, or ``default`` where it is unset or the session will not say (Databricks
    serverless and standard access mode refuse to read some settings)."""
    try:
        value = spark.conf.get(key, default)
    except Exception:  # refused (CONFIG_NOT_AVAILABLE): as good as unset for every caller
        return default
    return default if value is None else value


def executors_here(spark: SparkSession, remote: str | None = None) -> bool:
    """Whether every executor runs on this machine, so a folder of its disk is theirs too: a local master
    (``local[…]``, ``local-cluster[…]``) and this process beside the driver (a classic session, or a Spark
    Connect server on this host). An unreadable master (Databricks serverless) counts as elsewhere."""
    if is_connect(spark):
        url = remote or os.environ.get("SPARK_REMOTE", "")
        host = urlparse(url.replace("sc://", "http://", 1)).hostname if url else None
        if host not in ("localhost", "127.0.0.1", "::1"):
            return False
    return (conf_value(spark, "spark.master") or "").startswith("local")


_REFUSED: set[str] = set()


@contextlib.contextmanager
def session_setting(spark: SparkSession, key: str, value: str) -> Iterator[bool]:
    """Set ``key`` for the block and put it back after. Yields False, with the session untouched, where the
    session refuses the setting: Databricks serverless lets a job set only a handful of keys
    (``CONFIG_NOT_AVAILABLE``), and what mfr sets is never worth failing a run for."""
    from pyspark.errors import AnalysisException

    previous = conf_value(spark, key)
    try:
        spark.conf.set(key, value)
    except AnalysisException as exc:
        if key not in _REFUSED:  # once per key and process: a stage sets some keys at every commit
            _REFUSED.add(key)
            reason = (str(exc).strip().splitlines() or [""])[0]
            log.warning("mfr: this session does not let %s be set (%s); going on without it", key, reason)
        yield False
        return
    try:
        yield True
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


_OWNED: list[SparkSession] = []


def owned_sessions() -> int:
    return len(_OWNED)


def stop_owned_since(mark: int) -> None:
    """Stop sessions this module created after ``mark`` (a CLI run's own), never older or foreign ones."""
    while len(_OWNED) > mark:
        _OWNED.pop().stop()


def jvm_running() -> bool:
    """Whether pyspark has started a JVM in this process (classic Spark; a Connect client has none)."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark import SparkContext

    return SparkContext._gateway is not None


def stop_jvm(timeout_s: float = 60.0) -> None:
    """Stop the JVM pyspark started for this process and wait until it has exited. The embedded (Derby)
    metastore stays locked until its JVM exits, which pyspark otherwise leaves to happen after Python has
    gone: a script's next command would find the lakehouse held by a command that already returned."""
    import subprocess

    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)  # the JVM pyspark launched; None under spark-submit (the JVM owns us)
    if gateway is None or proc is None:
        return
    with contextlib.suppress(Exception):
        gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    with contextlib.suppress(Exception):
        proc.stdin.close()  # the gateway JVM exits when its standard input ends
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("the Spark JVM (pid %s) did not exit within %.0f s; the metastore may stay held until it does",
                    proc.pid, timeout_s)


def get_spark(cfg: Config | None = None) -> SparkSession:
    """The session to run on: a Spark Connect session when ``spark.remote`` is set, else the active one if
    any, else a local Delta + Hive session from ``cfg``."""
    from pyspark.sql import SparkSession

    from mfr.config import load_config

    cfg = cfg or load_config()
    if cfg.settings.spark.remote:
        return _connect(cfg.settings.spark.remote)
    active = SparkSession.getActiveSession()
    if active is not None or on_databricks():
        if on_databricks():  # the runtime owns pyspark, Delta and their libraries: say what is off, go on
            check_versions(None, warn_only=True)
        return active or SparkSession.builder.getOrCreate()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(cfg.settings.spark.app_name)
    master = cfg.settings.spark.master
    fetches_delta = False  # Delta's jars resolved by Spark at start (no fetched jars folder)
    if _submitted():
        from pyspark import SparkConf

        master = SparkConf().get("spark.master", master)  # spark-submit's --master wins
    elif master:
        builder = builder.master(master)
    if not master or master.startswith("local"):
        warehouse = Path(cfg.settings.lakehouse.warehouse)
        warehouse.mkdir(parents=True, exist_ok=True)
        check_metastore_free(warehouse.resolve())
        fetches_delta = not delta_jars() and not _submitted()
        if fetches_delta:
            from delta import configure_spark_with_delta_pip

            builder = configure_spark_with_delta_pip(builder)  # fetches the jars with Ivy (needs network)
        if not _submitted():  # before the JVM starts (under spark-submit: the JVM's own Delta, judged below)
            check_versions([] if fetches_delta else delta_jars())  # another line's Delta fails at its first write
        for key, value in _local_confs(warehouse, cfg.settings.spark.shuffle_partitions).items():
            builder = builder.config(key, value)
    else:
        builder = builder.config("spark.redaction.regex", REDACTION_REGEX).enableHiveSupport()
    for key, value in (cfg.settings.spark.conf or {}).items():
        if key == "spark.jars" and not _submitted() and (not master or master.startswith("local")) and delta_jars():
            value = ",".join([*delta_jars(), str(value)])  # extra jars (hadoop-aws …) beside Delta's, not instead
        builder = builder.config(key, str(value))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        # Spark exits before its gateway answers when Delta's jars cannot be fetched: say which and why,
        # where that is the reason (anything else keeps Spark's own error)
        from mfr.jars import installed_delta_coordinates, unpublished

        missing = unpublished(installed_delta_coordinates()) if fetches_delta else None
        if missing is None:
            raise
        raise missing from exc
    spark.sparkContext.setLogLevel("ERROR")
    _OWNED.append(spark)
    if _submitted():  # spark-submit's JVM, a cluster's Delta: judged from the JVM, before any table is touched
        check_jvm_delta(spark)
    return spark


def jvm_delta_version(spark: SparkSession) -> str | None:
    """The version of the Delta jars a classic session's JVM loaded (None without Delta or a JVM)."""
    try:
        return str(spark._jvm.io.delta.package.VERSION())  # type: ignore[union-attr]  # py4j's dynamic view
    except Exception:  # no Delta on the classpath, or not a py4j-backed session
        return None


def check_jvm_delta(spark: SparkSession) -> None:
    """The JVM's Spark against the Delta it loaded (spark-submit, a cluster's own jars): one line, as at a
    local start."""
    from mfr.jars import SetupError
    from mfr.versions import delta_problem

    delta = jvm_delta_version(spark)
    problem = delta_problem(spark.version, delta) if delta else None
    if problem:
        raise SetupError(f"{problem} (Spark {spark.version} runs the Delta {delta} jars this job was given)")


def check_versions(jar_names: list[str] | None, warn_only: bool = False) -> None:
    """The installed set against what runs together (:mod:`mfr.versions`): one line naming what is installed
    and the command that fixes it, as a SetupError (a warning where the platform owns the set). Delta is
    judged only where this process picks it (``jar_names``: the jars it loads, [] for the delta-spark
    package's); a Connect server's or a runtime's is theirs."""
    from mfr.jars import SetupError
    from mfr.versions import installed

    problems = installed(jar_names or [], judge_delta=jar_names is not None).problems()
    if problems and warn_only:
        for problem in problems:
            log.warning("%s", problem)
    elif problems:
        raise SetupError("; ".join(problems))


def _connect(url: str) -> SparkSession:
    """A Spark Connect session (Databricks standard access mode and serverless speak this protocol too)."""
    from pyspark.sql import SparkSession

    # the client's own libraries (Delta is the server's): pyarrow carries every result back
    check_versions(None, warn_only="databricks" in url.lower())
    try:
        spark = SparkSession.builder.remote(url).getOrCreate()
    except ImportError as exc:  # grpcio and friends are an extra of pyspark
        raise RuntimeError(f"spark.remote is set but Spark Connect's client is not installed ({exc}): "
                           "pip install 'mfr[connect]'") from None
    _OWNED.append(spark)
    return spark
