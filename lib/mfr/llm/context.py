"""What the call layer needs from its caller, and nothing else: the session, where it may write (a storage
and its staging folder), the run the calls belong to, its settings, and four callbacks: the stored calls
as a DataFrame, the images by id, the commit that appends a batch of finished calls once (idempotent), and
the runs whose journals are still being written. A stage builds one from its lakehouse and run log
(``StageContext.calls()``); a notebook builds one over any Delta table of its own (tests/test_llm_spark.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from mfr.settings import LlmConfig
from mfr.storage import Storage


@dataclass(frozen=True)
class CallContext:
    spark: SparkSession
    run_id: str
    label: str  # what the calls are for (a stage's name): it names their Spark jobs
    storage: Storage
    staging_root: str  # journals, staged requests and intermediates go under it
    settings: LlmConfig
    stored: Callable[[], DataFrame]  # the calls stored so far (LLM_CALLS_SCHEMA), read now
    commit: Callable[[DataFrame, str, int], None]  # append (calls, app id, batch number) once: a repeat is skipped
    images: Callable[[], DataFrame] | None = None  # image_id, bytes: for requests with an image_id
    busy_runs: Callable[[], set[str]] = field(default=lambda: set())  # runs whose journals are not ours to store
    stage_frame: Callable[[DataFrame, str], DataFrame] | None = None  # write an intermediate and read it back
