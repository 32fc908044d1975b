"""MMFineReason-style multimodal reasoning data pipeline on Spark + Delta Lake."""

from importlib import metadata

try:
    __version__ = metadata.version("mfr")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
