"""Run collect (if needed) and distill against a given server, in its own process (test-only driver)."""

import sys


def main(warehouse: str, dump: str, server_url: str, do_collect: str) -> None:
    from mfr.config import load_config
    from mfr.runner import run_stage
    from mfr.session import get_spark

    sets = [f"lakehouse.warehouse={warehouse}", "spark.master=local[2]", "spark.shuffle_partitions=2",
            f"collection.source={dump}", "distillation.overwrite=true", "llm.progress_interval_s=0.5"]
    for p in ("cot", "caption"):
        sets += [f"distillation.{p}.client.api_base={server_url}", f"distillation.{p}.client.model={p}-model",
                 f"distillation.{p}.client.max_concurrency=8", f"distillation.{p}.client.backoff_base_s=0.01"]
    cfg = load_config(overrides=sets)
    spark = get_spark(cfg)
    if do_collect == "1":
        run_stage(spark, cfg, "collect")
        print("COLLECTED", flush=True)
    r = run_stage(spark, cfg, "distill")
    print(f"DISTILLED {r.rows_kept} {r.rows_rejected}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
