"""Answer extraction and verification (pure)."""
