"""Stage transforms: DataFrame -> DataFrame, each ending in an explicit select."""
