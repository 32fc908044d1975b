"""Pure image functions on bytes (no Spark)."""
