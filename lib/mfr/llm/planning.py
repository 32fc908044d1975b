"""How many call tasks, and how wide each one's windows: from the settings and the session's task slots
(never from a SparkContext: Spark Connect has none)."""

from __future__ import annotations

import math
import os

from pyspark.sql import SparkSession

from mfr.llm.client import ClientSettings
from mfr.session import conf_value


def parallelism(spark: SparkSession, configured: int | None) -> int:
    """Spark tasks that run at once, from config and not from the context (Spark Connect has none):
    ``llm.tasks``, else ``spark.default.parallelism``, else a local master's cores, else the shuffle partitions."""
    if configured:
        return int(configured)
    value = _count(conf_value(spark, "spark.default.parallelism"))
    if value:
        return value
    master = conf_value(spark, "spark.master") or ""
    if master.startswith("local"):
        inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
        if master.startswith("local-cluster"):  # [executors, cores each, memory]
            executors, cores = inside.split(",")[:2]
            return int(executors) * int(cores)
        # local[N], local[*], local[N, F] (F: task retries); Databricks' single node says local[*, 4]
        return (os.cpu_count() or 1) if inside.startswith("*") else int(inside.split(",")[0])
    # Databricks takes "auto" here (AQE picks the count): no number to go by, so Spark's default
    return _count(conf_value(spark, "spark.sql.shuffle.partitions")) or 200


def _count(value: str | None) -> int | None:
    """A positive whole number from a setting's text, else None."""
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n > 0 else None


PER_TASK_WINDOW = 64  # requests one task keeps in flight comfortably (threads, base64 images, JSON)


def call_tasks(spark: SparkSession, configured: int | None, in_flight: int, slots: int | None = None) -> int:
    """Tasks that make calls at once: ``llm.tasks``, else enough for ``in_flight`` requests at about
    ``PER_TASK_WINDOW`` each. When that is fewer than the task slots, one slot stays free for the commits
    made while calls continue; when the windows need every slot (a small cluster, a wide endpoint), the
    calls get them all and the commits wait for the first task to end (the journals hold the results).
    Calls are I/O bound: a few tasks with wide windows keep endpoints fuller than many with a request or
    two each (a task that runs out of work idles its share of the window)."""
    if configured:
        return int(configured)
    slots = slots if slots is not None else parallelism(spark, None)
    wanted = max(1, math.ceil(in_flight / PER_TASK_WINDOW))
    return wanted if wanted < slots else slots


def endpoint_groups(clients: list[ClientSettings]) -> list[int]:
    """Clients that share their endpoints (the same ``api_base`` set) share one window."""
    seen: dict[tuple[str, ...], int] = {}
    return [seen.setdefault(tuple(sorted(c.api_bases)), len(seen)) for c in clients]


def _reach(clients: list[ClientSettings]) -> dict[int, int]:
    """Requests in flight per endpoint group: the smaller promise of the clients sharing it."""
    groups = endpoint_groups(clients)
    reach: dict[int, int] = {}
    for i, c in enumerate(clients):
        reach[groups[i]] = min(reach.get(groups[i], 1 << 30), c.max_concurrency * len(c.api_bases))
    return reach


def windows(clients: list[ClientSettings], tasks: int, slots: int) -> tuple[dict[int, int], int]:
    """Each endpoint group's window per task (its requests in flight split across the tasks calling at once)
    and how many tasks call at once."""
    concurrent = max(1, min(tasks, slots))
    return {g: max(1, n // concurrent) for g, n in _reach(clients).items()}, concurrent


def in_flight(clients: list[ClientSettings]) -> int:
    """Requests the endpoints take at once, all groups together."""
    return sum(_reach(clients).values())
