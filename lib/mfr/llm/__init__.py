"""Model calls: an OpenAI-compatible client, a sliding window of requests, and their Spark glue."""
