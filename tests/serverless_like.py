"""A Spark Connect client that treats session settings as Databricks serverless does (a test double).

Serverless notebooks and jobs may set only a handful of Spark settings; setting any other one fails with
``[CONFIG_NOT_AVAILABLE] Configuration <key> is not available. SQLSTATE: 42K0I``, an AnalysisException on
the client. ``refuse_settings()`` makes this process's Connect client answer so for every key outside that
list and records the keys it refused, so a test can show the refusal was met and survived.
"""

from __future__ import annotations

# The keys Databricks documents as settable on serverless compute.
SERVERLESS_SETTABLE = frozenset({
    "spark.sql.shuffle.partitions",
    "spark.sql.session.timeZone",
    "spark.sql.ansi.enabled",
    "spark.sql.files.maxPartitionBytes",
    "spark.sql.legacy.timeParserPolicy",
    "spark.databricks.execution.timeout",
})


def refuse_settings() -> list[str]:
    """Patch the Connect client's ``RuntimeConf.set``/``unset``; returns the list the refused keys go to."""
    from pyspark.errors.exceptions.connect import AnalysisException
    from pyspark.sql.connect.conf import RuntimeConf

    refused: list[str] = []
    real_set, real_unset = RuntimeConf.set, RuntimeConf.unset

    def check(key: str) -> None:
        if key not in SERVERLESS_SETTABLE:
            refused.append(key)
            raise AnalysisException(message=f"[CONFIG_NOT_AVAILABLE] Configuration {key} is not available. "
                                            "SQLSTATE: 42K0I")  # the one argument Spark 3.5's and 4.x's share

    def set_(self, key, value):  # type: ignore[no-untyped-def]
        check(key)
        return real_set(self, key, value)

    def unset(self, key):  # type: ignore[no-untyped-def]
        check(key)
        return real_unset(self, key)

    RuntimeConf.set = set_  # type: ignore[method-assign]
    RuntimeConf.unset = unset  # type: ignore[method-assign]
    return refused
