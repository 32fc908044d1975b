"""Helpers the notebooks call (they hold no logic of their own): open the lakehouse, SQL to pandas,
compare and restore table versions, browse samples with their images inline.

``open_lakehouse()`` reads ``$MFR_CONFIG`` (else ``conf/local.yaml``); a relative warehouse is taken
from the repository root, so notebooks opened from ``notebooks/`` see what ``make demo`` wrote.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mfr.config import Config, load_config
from mfr.lakehouse import Lakehouse
from mfr.resources import CHECKOUT, default_config
from mfr.runlog import RunLog
from mfr.session import get_spark
from mfr.stages.registry import TABLES as STAGE_TABLES


@dataclass
class Lake:
    spark: SparkSession
    cfg: Config
    lakehouse: Lakehouse

    def name(self, table: str) -> str:
        """Fully qualified name of a stage table, e.g. ``lake.name("selected")``."""
        return self.lakehouse.name(table)

    def sql(self, query: str, limit: int = 1000) -> pd.DataFrame:
        """Run Spark SQL; ``{selected}``-style placeholders become table names. Returns pandas (capped)."""
        names = {t: self.name(t) for t in [*STAGE_TABLES.values(), "runs", "llm_calls", "images", "quarantine",
                                           "mmfr_selected", "mmfr_hard", "mmfr_hardest"]}
        return self.spark.sql(query.format(**names)).limit(limit).toPandas()

    def runs(self, stage: str | None = None) -> pd.DataFrame:
        cols = ["run_id", "stage", "status", "output_version", "rows_in", "rows_kept", "rows_rejected", "input_versions"]
        return RunLog(self.lakehouse).list(stage).select(*cols).toPandas()

    def history(self, table: str) -> pd.DataFrame:
        return self.lakehouse.history(table).select("version", "timestamp", "operation", "userMetadata").toPandas()

    def compare_versions(self, table: str, old: int, new: int, by: str = "reject_reason") -> pd.DataFrame:
        """Rows per ``by`` value in two versions of a table, side by side, with the change."""
        def counts(v: int) -> pd.Series:
            df = self.lakehouse.read(table, v).groupBy(F.coalesce(F.col(by).cast("string"), F.lit("(kept)")).alias(by)).count()
            return df.toPandas().set_index(by)["count"]

        out = pd.DataFrame({f"v{old}": counts(old), f"v{new}": counts(new)}).fillna(0).astype(int)
        out["change"] = out[f"v{new}"] - out[f"v{old}"]
        return out.sort_values(f"v{new}", ascending=False)

    def changed_rows(self, table: str, old: int, new: int, column: str = "reject_reason") -> pd.DataFrame:
        """Samples whose ``column`` differs between two versions (time travel on both sides)."""
        a = self.lakehouse.read(table, old).select("sample_key", F.col(column).alias("before"))
        b = self.lakehouse.read(table, new).select("sample_key", F.col(column).alias("after"))
        return a.join(b, "sample_key", "full").where(~F.col("before").eqNullSafe(F.col("after"))).toPandas()

    def restore(self, table: str, version: int) -> int:
        """RESTORE a stage table to an earlier version (a new version with the old content); returns it.
        Recorded as a run in ``runs``, so the next stage reads the restored content."""
        from mfr.lakehouse import new_run_id
        from mfr.runlog import RunLog
        from mfr.writer_lock import lakehouse_held

        run_id = new_run_id("restore")
        with lakehouse_held(self.lakehouse, run_id):
            restored = self.lakehouse.restore(table, version)
            RunLog(self.lakehouse).publish(table, self.cfg, kind="restore", restored_from=version, run_id=run_id)
        return restored

    def publish(self, table: str) -> int:
        """After correcting a stage table by hand (SQL ``UPDATE``/``DELETE``), make its current version the
        next stage's input (recorded as a run); returns that version."""
        from mfr.lakehouse import new_run_id
        from mfr.runlog import RunLog
        from mfr.writer_lock import lakehouse_held

        run_id = new_run_id("publish")
        with lakehouse_held(self.lakehouse, run_id):
            RunLog(self.lakehouse).publish(table, self.cfg, run_id=run_id)
        version = self.lakehouse.current_version(table)
        assert version is not None  # publish raised otherwise
        return version

    def samples_html(self, table: str = "selected", where: str = "reject_reason IS NULL", n: int = 4,
                     version: int | None = None, max_chars: int = 600) -> str:
        """HTML cards (image inline, question, answer, start of the trace) for ``n`` rows of a table."""
        df = self.lakehouse.read(table, version).where(where).orderBy("sample_key").limit(n)
        images = self.lakehouse.read("images").select("image_id", "bytes", "format")
        rows = df.join(images, "image_id", "left").orderBy("sample_key").collect()
        cards = []
        for r in rows:
            d = r.asDict()
            img = ""
            if d.get("bytes"):
                mime = "image/png" if (d.get("format") or "").upper() == "PNG" else "image/jpeg"
                img = f"<img style='max-width:260px;max-height:260px' src='data:{mime};base64,{base64.b64encode(d['bytes']).decode()}'>"
            trace = (d.get("cot_response") or "")[:max_chars]
            cards.append(
                "<div style='display:flex;gap:12px;border:1px solid #ddd;padding:8px;margin:6px 0'>"
                f"<div>{img}</div><div style='font-size:13px'><b>{html.escape(str(d['sample_key']))}</b> "
                f"({html.escape(str(d.get('reject_reason') or 'kept'))})<br><b>Q:</b> {html.escape(str(d.get('question')))}"
                f"<br><b>A:</b> {html.escape(str(d.get('answer')))}<br><pre style='white-space:pre-wrap'>{html.escape(trace)}</pre>"
                "</div></div>"
            )
        return "".join(cards) or "<p>no rows</p>"


def open_lakehouse(config: str | None = None, overrides: list[str] | None = None) -> Lake:
    import os

    path = config or os.environ.get("MFR_CONFIG") or str(default_config())
    cfg = load_config(path, overrides or [])
    warehouse = Path(cfg.settings.lakehouse.warehouse)
    if not warehouse.is_absolute():
        # notebooks run from notebooks/: a relative warehouse means the checkout's, as for the CLI
        cfg = cfg.with_overrides([f"lakehouse.warehouse={CHECKOUT / warehouse}"])
    spark = get_spark(cfg)
    return Lake(spark, cfg, Lakehouse(spark, cfg))
