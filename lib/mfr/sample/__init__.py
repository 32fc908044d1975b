"""Synthetic dumps for demos, tests and benchmarks."""
