"""MMFineReason-style multimodal reasoning data pipeline on Spark + Delta Lake."""

__version__ = "0.1.0"
