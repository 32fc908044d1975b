"""Near-duplicate samples: image fingerprints, MinHash signatures of questions, LSH band keys and the rule
that says two rows are the same sample (pure functions; the Spark step joins band keys)."""
