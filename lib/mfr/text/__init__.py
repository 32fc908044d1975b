"""Pure text functions on strings (no Spark)."""
