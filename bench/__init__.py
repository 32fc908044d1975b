"""`make bench`: side-by-side measurements written to bench/results/latest.json."""
