"""`mfr report`: one HTML page with PNG figures that shows what a pipeline run did.

``gather`` reads small aggregates from the Delta tables (never rows); ``render`` turns them into
figures and a page (pure, no Spark). Figures: the funnel per stage and per source with reject
reasons, pass-rate bubbles per source, CoT and caption length distributions, and model-call
statistics (tokens, latency, errors by kind).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mfr.config import Config
from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.stages.registry import NAMES as STAGES
from mfr.stages.registry import TABLES as STAGE_TABLES
from mfr.storage import Storage, join

LENGTH_BINS = [0, 50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200, 4800, 6400, 9600, 12800, 10**9]
FIGURES = ["funnel.png", "funnel_by_source.png", "pass_rate.png", "lengths.png", "llm_calls.png"]


@dataclass
class ReportData:
    title: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage → {run_id, version, table}
    funnel: dict[str, dict[str, int]] = field(default_factory=dict)  # stage → reason ("kept") → rows
    by_source: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # stage → source → reason → rows
    pass_rate: dict[str, dict[float, int]] = field(default_factory=dict)  # source → pass rate → rows
    lengths: dict[str, dict[int, int]] = field(default_factory=dict)  # cot|caption → bin start → rows
    llm: list[dict[str, Any]] = field(default_factory=list)  # per purpose: calls, ok, tokens, latency
    llm_errors: dict[str, int] = field(default_factory=dict)  # error kind → calls
    # source → labelled, agree, undecided, false_accepts (mfr's verdict against the dump's label), by_dump (rows
    # whose is_consistent is the dump's label)
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)
    near_dups: list[list[Any]] = field(default_factory=list)  # [kept row's source, removed row's source, rows]
    overlap: list[list[Any]] = field(default_factory=list)  # [benchmark, signal, rows rejected]


def lineage(lh: Lakehouse, run_id: str | None) -> dict[str, dict[str, Any]]:
    """stage → {run_id, version} of the tables a run's results rest on (latest versions without a run)."""
    runs = {r["run_id"]: r.asDict() for r in RunLog(lh).list().collect()}
    by_output = {(r["stage"], r["output_version"]): r for r in runs.values() if r["status"] == "succeeded"}
    out: dict[str, dict[str, Any]] = {}
    if run_id is None:
        for stage, table in STAGE_TABLES.items():
            v = lh.current_version(table)
            if v is not None:
                writer = by_output.get((stage, v))
                out[stage] = {"run_id": writer["run_id"] if writer else None, "version": v}
        return out
    if run_id not in runs:
        raise ValueError(f"no run {run_id} in {lh.name('runs')}")
    todo = [runs[run_id]]
    table_stage = {t: s for s, t in STAGE_TABLES.items()}
    while todo:
        r = todo.pop()
        if r["stage"] in out or r["output_version"] is None:
            continue
        out[r["stage"]] = {"run_id": r["run_id"], "version": int(r["output_version"])}
        for table, v in (r["input_versions"] or {}).items():
            upstream = by_output.get((table_stage.get(table), v))
            if upstream:
                todo.append(upstream)
    return out


def gather(spark: SparkSession, cfg: Config, run_id: str | None = None) -> ReportData:
    lh = Lakehouse(spark, cfg)
    data = ReportData(title=f"mfr run report — {cfg.settings.lakehouse.schema}" + (f" — run {run_id}" if run_id else ""))
    data.versions = lineage(lh, run_id)
    run_ids = [v["run_id"] for v in data.versions.values() if v["run_id"]]
    for stage in STAGES:
        if stage not in data.versions:
            continue
        df = lh.read(STAGE_TABLES[stage], data.versions[stage]["version"])
        reason = F.coalesce(F.col("reject_reason"), F.lit("kept"))
        for r in df.groupBy("source", reason.alias("reason")).count().collect():
            data.funnel.setdefault(stage, {}).setdefault(r["reason"], 0)
            data.funnel[stage][r["reason"]] += int(r["count"])
            data.by_source.setdefault(stage, {}).setdefault(r["source"], {})[r["reason"]] = int(r["count"])
        data.versions[stage]["table"] = lh.name(STAGE_TABLES[stage])
    last = next((s for s in ("select", "distill") if s in data.versions), None)
    if last:
        df = lh.read(STAGE_TABLES[last], data.versions[last]["version"]).where(F.col("reject_reason").isNull())
        rate = "pass_rate" if last == "select" else "source_pass_rate"
        for r in df.groupBy("source", F.round(F.col(rate), 2).alias("p")).count().collect():
            if r["p"] is not None:
                data.pass_rate.setdefault(r["source"], {})[float(r["p"])] = int(r["count"])
        for col in ("cot_response", "caption"):
            words = F.size(F.split(F.trim(F.coalesce(F.col(col), F.lit(""))), r"\s+"))
            bins = F.lit(0)
            for b in LENGTH_BINS[1:-1]:
                bins = F.when(words >= b, F.lit(b)).otherwise(bins)
            name = "cot" if col == "cot_response" else "caption"
            for r in df.groupBy(bins.alias("b")).count().collect():
                data.lengths.setdefault(name, {})[int(r["b"])] = int(r["count"])
    if "select" in data.versions:
        data.verdicts = _verdicts(lh.read("selected", data.versions["select"]["version"]))
    removed = data.funnel.get("clean", {})
    if removed.get("near_duplicate") or removed.get("benchmark_overlap"):  # the funnel's counts say whether to look
        data.near_dups, data.overlap = _clean_removals(lh.read("cleaned", data.versions["clean"]["version"]))
    calls = lh.read("llm_calls")
    if run_id is not None:
        calls = calls.where(F.col("run_id").isin(run_ids))
    for r in calls.groupBy("purpose").agg(
        F.count("*").alias("calls"), F.sum((F.col("status") == "ok").cast("int")).alias("ok"),
        F.sum("prompt_tokens").alias("prompt_tokens"), F.sum("completion_tokens").alias("completion_tokens"),
        F.percentile_approx("latency_s", 0.5).alias("p50"), F.percentile_approx("latency_s", 0.95).alias("p95"),
    ).orderBy("purpose").collect():
        data.llm.append({k: (r[k] if r[k] is not None else 0) for k in r.asDict()})
    for r in calls.where(F.col("status") != "ok").groupBy(F.coalesce("error_kind", F.lit("unknown")).alias("k")).count().collect():
        data.llm_errors[r["k"]] = int(r["count"])
    return data


def _clean_removals(cleaned: DataFrame) -> tuple[list[list[Any]], list[list[Any]]]:
    """Near duplicates per (kept row's source, removed row's source) and benchmark overlaps per (benchmark,
    signal), from the reasons and details clean wrote."""
    reason = F.col("reject_reason")
    near = cleaned.where(reason == "near_duplicate").select(
        F.col("source").alias("removed"), F.regexp_extract("reject_detail", r"^near duplicate of (\S+)", 1).alias("kept_key"))
    keys = cleaned.select(F.col("sample_key").alias("kept_key"), F.col("source").alias("kept"))
    pairs = [[r["kept"], r["removed"], int(r["count"])] for r in
             near.join(keys, "kept_key", "left").groupBy("kept", "removed").count().orderBy("kept", "removed").collect()]
    hits = cleaned.where(reason == "benchmark_overlap").select(
        F.get_json_object("reject_detail", "$.benchmark").alias("benchmark"),
        F.get_json_object("reject_detail", "$.signal").alias("signal"))
    overlap = [[r["benchmark"], r["signal"], int(r["count"])] for r in
               hits.groupBy("benchmark", "signal").count().orderBy("benchmark", "signal").collect()]
    return pairs, overlap


def _verdicts(selected: DataFrame) -> dict[str, dict[str, int]]:
    """Per source: mfr's own verdict against the dump's label (select's counts), and how many rows'
    ``is_consistent`` is the dump's label (a version written before the two were apart: nothing)."""
    from mfr.stages.select import verdict_counts

    if "mfr_is_consistent" not in selected.columns:
        return {}
    return {r["source"]: {k: int(r[k] or 0) for k in ("labelled", "agree", "undecided", "false_accepts", "by_dump")}
            for r in verdict_counts(selected, "source")}


# --- rendering (pure) ------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(data: ReportData) -> dict[str, Any]:
    """One colour per reject reason across every figure (kept is always green)."""
    cmap = _plt().get_cmap("tab20")
    reasons = sorted({k for f in data.funnel.values() for k in f if k != "kept"})
    return {"kept": "#2e7d32", **{r: cmap(i % 20) for i, r in enumerate(reasons)}}


def _stacked(ax, rows: dict[str, dict[str, int]], title: str, colors: dict[str, Any], counts: bool = True) -> None:
    labels = list(rows)
    reasons = ["kept"] + sorted({k for v in rows.values() for k in v if k != "kept"})
    left = [0] * len(labels)
    for reason in reasons:
        vals = [rows[lab].get(reason, 0) for lab in labels]
        label = f"{reason} ({sum(vals)})" if counts else reason
        ax.barh(labels, vals, left=left, label=label, color=colors.get(reason, "#999"))
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel("rows")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555")
    ax.set_axis_off()


def render(data: ReportData, out: str, storage: Storage | None = None) -> str:
    """Write the PNGs and ``index.html`` into ``out`` (a local folder, a Volume or an object store);
    returns the page's path."""
    import io

    storage = storage or Storage()
    plt = _plt()
    colors = _colors(data)
    figures = {
        "funnel": _plot_funnel(plt, data, colors),
        "funnel_by_source": _plot_by_source(plt, data, colors),
        "pass_rate": _plot_pass_rate(plt, data),
        "lengths": _plot_lengths(plt, data),
        "llm_calls": _plot_llm_calls(plt, data),
    }
    for name, fig in figures.items():
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        storage.write_bytes(join(out, f"{name}.png"), buf.getvalue())
    page = join(out, "index.html")
    storage.write_text(page, _html(data))
    storage.write_text(join(out, "report.json"), json.dumps(_jsonable(data), indent=1, default=str) + "\n")
    return page


def _plot_funnel(plt: Any, data: ReportData, colors: dict[str, Any]) -> Any:
    """Rows per stage, stacked by reject reason."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if data.funnel:
        _stacked(ax, {s: data.funnel[s] for s in STAGES if s in data.funnel}, "Rows per stage: kept and rejected by reason", colors,
                counts=False)
    else:
        _empty(ax, "no stage has run yet")
    return fig


def _plot_by_source(plt: Any, data: ReportData, colors: dict[str, Any]) -> Any:
    """Rows per source for each stage."""
    stages = [s for s in STAGES if s in data.by_source]
    fig, axes = plt.subplots(max(1, len(stages)), 1, figsize=(10, 2.2 + 1.6 * max(1, len(stages))), squeeze=False)
    for ax, stage in zip(axes[:, 0], stages):
        _stacked(ax, dict(sorted(data.by_source[stage].items())), f"{stage}: per source", colors)
    if not stages:
        _empty(axes[0, 0], "no stage has run yet")
    return fig


def _plot_pass_rate(plt: Any, data: ReportData) -> Any:
    """Pass-rate bubbles per source."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    if data.pass_rate:
        sources = sorted(data.pass_rate)
        top = max(c for v in data.pass_rate.values() for c in v.values())
        for i, s in enumerate(sources):
            rates = sorted(data.pass_rate[s])
            counts = [data.pass_rate[s][p] for p in rates]
            ax.scatter([i] * len(rates), rates, s=[40 + 1400 * c / top for c in counts], alpha=0.55)
            for p, c in zip(rates, counts):
                ax.annotate(str(c), (i, p), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(sources)), sources, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("pass rate of the small model")
        ax.set_ylim(-0.15, 1.15)
        ax.set_title("Difficulty per source (bubble area = rows; 0 = hardest subset, < 1 = hard subset)")
    else:
        _empty(ax, "no pass rates yet (select has not run)")
    return fig


def _plot_lengths(plt: Any, data: ReportData) -> Any:
    """CoT and caption length histograms."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, name in zip(axes, ("cot", "caption")):
        hist = data.lengths.get(name, {})
        if hist:
            bins = [b for b in LENGTH_BINS[:-1] if b <= max(hist)]  # empty bins shown too: the shape matters
            hist = {b: hist.get(b, 0) for b in bins}
            ax.bar([str(b) + "+" for b in bins], [hist[b] for b in bins], color="#1565c0")
            ax.set_title(f"{'CoT' if name == 'cot' else 'Caption'} length (words)")
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
            ax.set_ylabel("rows")
        else:
            _empty(ax, f"no {name} lengths")
    return fig


def _plot_llm_calls(plt: Any, data: ReportData) -> Any:
    """Tokens, latency and failures of the model calls."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    if data.llm:
        purposes = [r["purpose"] for r in data.llm]
        axes[0].bar(purposes, [r["prompt_tokens"] for r in data.llm], label="prompt")
        axes[0].bar(purposes, [r["completion_tokens"] for r in data.llm], bottom=[r["prompt_tokens"] for r in data.llm],
                    label="completion")
        axes[0].set_title("Tokens per purpose")
        axes[0].legend(fontsize=7)
        x = range(len(purposes))
        axes[1].bar([i - 0.2 for i in x], [r["p50"] for r in data.llm], width=0.4, label="p50")
        axes[1].bar([i + 0.2 for i in x], [r["p95"] for r in data.llm], width=0.4, label="p95")
        axes[1].set_xticks(list(x), purposes)
        axes[1].set_title("Latency (s)")
        axes[1].legend(fontsize=7)
        if data.llm_errors:
            axes[2].bar(list(data.llm_errors), list(data.llm_errors.values()), color="#c62828")
            axes[2].set_title("Failed calls by kind")
        else:
            _empty(axes[2], "no failed calls")
        for ax in axes[:2]:
            ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    else:
        for ax in axes:
            ax.set_axis_off()
        _empty(axes[1], "no model calls in these runs (no endpoint was configured)")
    return fig


def _jsonable(data: ReportData) -> dict[str, Any]:
    d = dict(data.__dict__)
    d["pass_rate"] = {s: {str(k): v for k, v in h.items()} for s, h in data.pass_rate.items()}
    return d


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(data: ReportData) -> str:
    versions = _table(["stage", "table", "version", "run"],
                      [[s, v.get("table", ""), v["version"], v["run_id"] or ""] for s, v in data.versions.items()])
    funnel = _table(["stage", "rows", "kept", "rejected by reason"], [
        [s, sum(f.values()), f.get("kept", 0), ", ".join(f"{k}={v}" for k, v in sorted(f.items()) if k != "kept")]
        for s, f in data.funnel.items()])
    llm = _table(["purpose", "calls", "ok", "prompt tokens", "completion tokens", "p50 s", "p95 s"],
                 [[r["purpose"], r["calls"], r["ok"], r["prompt_tokens"], r["completion_tokens"],
                   f"{r['p50']:.2f}", f"{r['p95']:.2f}"] for r in data.llm]) if data.llm else "<p>No model calls.</p>"
    sections = [
        ("Funnel", "funnel.png", funnel), ("Funnel per source", "funnel_by_source.png", ""),
        *([("Answer check", "", _verdicts_html(data.verdicts))] if data.verdicts else []),
        *([("Near duplicates", "", "<p>Rows clean removed as near copies, by the source of the row each cluster kept."
            "</p>" + _table(["kept source", "removed source", "rows"], data.near_dups))] if data.near_dups else []),
        *([("Benchmark overlap", "", "<p>Rows clean removed as overlapping a benchmark item, by the signal that named "
            "it (every match is in <code>mfr.contamination</code>).</p>" + _table(["benchmark", "signal", "rows"],
                                                                                  data.overlap))] if data.overlap else []),
        ("Difficulty", "pass_rate.png", ""), ("Lengths", "lengths.png", ""), ("Model calls", "llm_calls.png", llm),
    ]
    body = "".join(f"<h2>{t}</h2>{extra}" + (f"<img src='{img}' alt='{t}'>" if img else "") for t, img, extra in sections)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(data.title) + "</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1250px}img{max-width:100%;border:1px solid #ddd}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "</style></head><body><h1>" + html.escape(data.title) + f"</h1><p>Written {now}.</p><h2>Tables read</h2>"
        + versions + body + "</body></html>"
    )


def _verdicts_html(verdicts: dict[str, dict[str, int]]) -> str:
    """Which verdict is which: the one that decided each row, and mfr's own against the dump's labels."""
    total = {k: sum(v[k] for v in verdicts.values()) for k in ("labelled", "agree", "undecided", "false_accepts", "by_dump")}
    rows = [[src, v["labelled"], f"{v['agree'] / v['labelled']:.3f}" if v["labelled"] else "", v["undecided"],
             v["false_accepts"], v["by_dump"]] for src, v in sorted(verdicts.items(), key=lambda kv: str(kv[0]))]
    rows.append(["all", total["labelled"], f"{total['agree'] / total['labelled']:.3f}" if total["labelled"] else "",
                 total["undecided"], total["false_accepts"], total["by_dump"]])
    return ("<p><code>is_consistent</code> in <code>selected</code> is the verdict that decided each row (the dump's "
            "label where <code>consistency_method = dump_label</code>, else mfr's); the agreement below is mfr's own "
            "verdict (<code>mfr_is_consistent</code>, undecided counted as not consistent) against the dump's label, over "
            "every labelled row.</p>" + _table(["source", "labelled", "agreement", "undecided", "false accepts",
                                                 "decided by the dump's label"], rows))


def write_report(spark: SparkSession, cfg: Config, run_id: str | None = None, out: str | Path | None = None) -> str:
    data = gather(spark, cfg, run_id)
    folder = str(out) if out else join(cfg.settings.lakehouse.warehouse, "reports", run_id or "latest")
    return render(data, folder, Storage.from_config(cfg))
