"""Training exports: LLaMA-Factory sharegpt files and an HF dataset (pure builders; Spark glue in mfr.stages.export)."""
