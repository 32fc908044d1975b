"""Request and token rate caps for hosted endpoints (Databricks model serving, hosted APIs), no Spark.

Two token buckets, each optional: requests per second and tokens per minute. A call takes one request and
its estimated tokens before it is sent (the prompt's text characters / 4, a share per image, plus
``max_tokens`` × ``n``: what hosted APIs reserve) and settles the difference with the usage the server reports. A bucket holds at most
one second of requests and ten seconds of tokens, so a task never bursts past the cap after an idle spell;
a call larger than the token bucket waits for a full bucket and leaves it in debt (it is never refused).
A job's cap is split across the tasks that call at once, like ``max_concurrency``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class _Bucket:
    def __init__(self, rate_per_s: float, capacity: float, now: float):
        self.rate, self.capacity = rate_per_s, capacity
        self.level, self.at = capacity, now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (at most a full bucket) is there; 0 when it is."""
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """Thread-safe; one per client. ``acquire`` blocks until the call may go."""

    def __init__(self, requests_per_s: float | None = None, tokens_per_min: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        now = clock()
        self._requests = _Bucket(requests_per_s, max(1.0, requests_per_s), now) if requests_per_s else None
        self._tokens = _Bucket(tokens_per_min / 60.0, tokens_per_min / 6.0, now) if tokens_per_min else None
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.waited_s = 0.0

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def acquire(self, tokens: int) -> None:
        if not self.active:
            return
        while True:
            with self._lock:
                now = self._clock()
                wait = 0.0
                for bucket, amount in ((self._requests, 1.0), (self._tokens, float(tokens))):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(amount))
                if wait <= 1e-6:  # (float dust: never spin on a rounding error)
                    if self._requests is not None:
                        self._requests.level -= 1.0
                    if self._tokens is not None:
                        self._tokens.level -= float(tokens)
                    return
                self.waited_s += wait
            self._sleep(wait)

    def settle(self, estimated: int, actual: int | None) -> None:
        """Give back (or take) the difference between the tokens reserved and those the server counted."""
        if self._tokens is None or actual is None:
            return
        with self._lock:
            self._tokens.refill(self._clock())
            self._tokens.level = min(self._tokens.capacity, self._tokens.level + estimated - actual)


IMAGE_TOKENS = 1280  # a rough reservation per image (a 2048-pixel edge is ~1-4k vision tokens); settled after


def estimate_tokens(messages: list[dict[str, Any]], params: dict[str, Any]) -> int:
    """What a hosted API reserves for a call: the prompt's text characters / 4 and a share per image (not
    the image's base64 length), plus the most it may generate."""
    chars = images = 0
    for msg in messages:
        content = msg.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "image_url":
                images += 1
            else:
                chars += len(str(part.get("text") or ""))
    most = int(params.get("max_tokens") or params.get("max_completion_tokens") or 0)
    return chars // 4 + images * IMAGE_TOKENS + most * int(params.get("n") or 1)


def per_task(cap: float | None, tasks: int) -> float | None:
    """A job-wide cap split across the tasks that call at once."""
    return cap / max(1, tasks) if cap else None
