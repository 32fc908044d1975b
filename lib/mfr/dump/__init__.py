"""Reading HF-layout dumps."""
