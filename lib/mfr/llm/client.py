"""An OpenAI-compatible chat-completions client as vLLM serves it (requests, pooled sessions; no Spark).

* several ``api_base`` replicas, each request sent to the healthy replica with the fewest in flight;
* retries with exponential backoff and full jitter on timeouts, connection errors, 408, 429, 5xx and
  malformed bodies, honouring ``Retry-After``, capped at ``max_attempts``; other 4xx fail at once;
* a circuit breaker per replica that opens when nearly every recent call failed, so a dead endpoint
  fails its rows fast instead of hanging the job, and lets one probe through after a cool-down;
* every call ends in a ``CallResult`` (never an exception): status, choices with their
  ``finish_reason``, token usage, attempts, latency and the last error's kind.

The API key is read from the environment variable the config names; it only ever travels in the
Authorization header, and no error message or result carries it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from mfr.config import client_defaults
from mfr.llm.ratelimit import RateLimiter, estimate_tokens, per_task
from mfr.settings import ClientConfig, build
from mfr.text.cot import with_think_block, without_thinking

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class MissingEndpoint(ValueError):
    """A stage needs a model but its client section has no api_base/model."""


_DEFAULTS = client_defaults()


@dataclass(frozen=True)
class ClientSettings:
    api_bases: tuple[str, ...]
    model: str
    api_key: str | None = field(default=None, repr=False)
    # defaults from the config schema (one place); the breaker's window and rate are not configurable
    max_concurrency: int = _DEFAULTS["max_concurrency"]
    timeout_s: float = _DEFAULTS["timeout_s"]
    connect_timeout_s: float = _DEFAULTS["connect_timeout_s"]
    max_attempts: int = _DEFAULTS["max_attempts"]
    backoff_base_s: float = _DEFAULTS["backoff_base_s"]
    backoff_max_s: float = _DEFAULTS["backoff_max_s"]
    breaker_window: int = 20
    breaker_failure_rate: float = 0.9
    breaker_cooldown_s: float = _DEFAULTS["breaker_cooldown_s"]
    requests_per_s: float | None = None  # job-wide caps; each task's client gets its share
    tokens_per_min: float | None = None
    response_format: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    keep_thinking: bool = False  # only the CoT trace keeps the thinking (distill sets it); captions, verdicts do not

    @classmethod
    def optional(cls, section: ClientConfig | Mapping[str, Any], where: str) -> ClientSettings | None:
        """Settings, or None when the section names no endpoint at all (a half-set section is an error)."""
        try:
            return cls.from_section(section, where)
        except MissingEndpoint:
            if _typed(section).api_base:
                raise
            return None

    @classmethod
    def from_section(cls, section: ClientConfig | Mapping[str, Any], where: str = "client") -> ClientSettings:
        """Settings from a config client section; MissingEndpoint names the key to set when unset."""
        sec = _typed(section)
        bases = [sec.api_base] if isinstance(sec.api_base, str) else sec.api_base
        if not bases:
            raise MissingEndpoint(f"no endpoint configured: set {where}.api_base (and {where}.model)")
        if not sec.model:
            raise MissingEndpoint(f"no model configured: set {where}.model")
        api_key = os.environ.get(sec.api_key_env) if sec.api_key_env else None
        if sec.api_key_env and api_key is None:
            raise MissingEndpoint(f"{where}.api_key_env names {sec.api_key_env}, which is not set in the environment")
        return cls(api_bases=tuple(b.rstrip("/") for b in bases), model=sec.model, api_key=api_key,
                   **{name: getattr(sec, name) for name in _FROM_CONFIG})


# the settings a config section gives as they are: every field both classes declare (a field added to the
# schema and to ClientSettings reaches the client with no line here); the rest are derived above or fixed
_DERIVED = frozenset({"api_bases", "model", "api_key"})
_FROM_CONFIG = tuple(f.name for f in dataclasses.fields(ClientSettings)
                     if f.name in {c.name for c in dataclasses.fields(ClientConfig)} and f.name not in _DERIVED)


def _typed(section: ClientConfig | Mapping[str, Any]) -> ClientConfig:
    """A client section as typed settings; a plain mapping (tests, notebooks) is completed with the defaults."""
    if isinstance(section, ClientConfig):
        return section
    return build(ClientConfig, {**_DEFAULTS, **section})


@dataclass
class ChatRequest:
    key: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallResult:
    request_key: str
    status: str  # "ok" | "error"
    choices: list[dict[str, Any]] = field(default_factory=list)  # [{"text", "finish_reason"}]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 0
    latency_s: float = 0.0
    endpoint: str | None = None
    error_kind: str | None = None
    error: str | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].get("finish_reason") if self.choices else None

    @property
    def text(self) -> str | None:
        return self.choices[0].get("text") if self.choices else None


class _Breaker:
    """Opens when the last ``window`` outcomes are nearly all failures; half-opens after a cool-down."""

    def __init__(self, window: int, rate: float, cooldown: float):
        self.outcomes: deque[bool] = deque(maxlen=window)
        self.rate = rate
        self.cooldown = cooldown
        self.open_until = 0.0
        self.probing = False

    def available(self, now: float) -> bool:
        if self.open_until == 0.0:
            return True
        if now >= self.open_until and not self.probing:
            self.probing = True  # one probe goes through; its outcome decides
            return True
        return False

    def record(self, ok: bool, now: float) -> None:
        if self.probing:
            self.probing = False
            if ok:
                self.open_until = 0.0
                self.outcomes.clear()
            else:
                self.open_until = now + self.cooldown
            return
        self.outcomes.append(ok)
        full = len(self.outcomes) == self.outcomes.maxlen
        if full and self.outcomes.count(False) >= self.rate * len(self.outcomes):
            self.open_until = now + self.cooldown


class _Endpoint:
    def __init__(self, base: str, settings: ClientSettings, pool: int):
        self.base = base
        self.url = f"{base}/chat/completions"
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.in_flight = 0
        self.breaker = _Breaker(settings.breaker_window, settings.breaker_failure_rate, settings.breaker_cooldown_s)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


class OpenAIClient:
    """Thread-safe client; one per task, shared by the threads of its sliding window."""

    def __init__(
        self,
        settings: ClientSettings,
        pool: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        share: int = 1,
    ):
        """``share``: how many clients (tasks) call the endpoint at once; each takes that share of the caps."""
        self.settings = settings
        pool = pool or settings.max_concurrency
        self.limiter = RateLimiter(per_task(settings.requests_per_s, share), per_task(settings.tokens_per_min, share))
        self.endpoints = [_Endpoint(b, settings, pool) for b in settings.api_bases]
        self._lock = threading.Lock()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._next = 0
        headers = {"Content-Type": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._headers = headers

    def close(self) -> None:
        for ep in self.endpoints:
            ep.session.close()

    def _acquire(self, avoid: _Endpoint | None = None) -> _Endpoint | None:
        with self._lock:
            now = time.monotonic()
            ready = [ep for ep in self.endpoints if ep is not avoid and ep.breaker.available(now)]
            if not ready and avoid is not None and avoid.breaker.available(now):
                ready = [avoid]  # a retry goes elsewhere when it can, back to the same replica when not
            if not ready:
                return None
            self._next = (self._next + 1) % len(self.endpoints)
            # fewest in flight; rotation breaks ties so replicas share the load evenly
            ep = min(ready, key=lambda e: (e.in_flight, (self.endpoints.index(e) - self._next) % len(self.endpoints)))
            ep.in_flight += 1
            return ep

    def _release(self, ep: _Endpoint, ok: bool) -> None:
        with self._lock:
            ep.in_flight -= 1
            ep.breaker.record(ok, time.monotonic())

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)  # full jitter

    def body(self, req: ChatRequest) -> dict[str, Any]:
        """The request body: the client's extra fields first, then the request's own parameters."""
        body: dict[str, Any] = {**(self.settings.extra_body or {}), "model": self.settings.model, "messages": req.messages}
        if self.settings.response_format:
            body["response_format"] = dict(self.settings.response_format)
        body.update({k: v for k, v in req.params.items() if v is not None})
        return body

    def call(self, req: ChatRequest) -> CallResult:
        s = self.settings
        start = time.monotonic()
        result = CallResult(req.key, "error")
        payload = json.dumps(self.body(req), ensure_ascii=False).encode("utf-8")
        headers = {**self._headers, "X-MFR-Request-Key": req.key}
        last: _Endpoint | None = None
        reserved = estimate_tokens(req.messages, req.params) if self.limiter.active else 0
        for attempt in range(1, s.max_attempts + 1):
            result.attempts = attempt
            self.limiter.acquire(reserved)  # every attempt counts against a hosted endpoint's caps
            ep = self._acquire(avoid=last)
            if ep is None:
                result.error_kind, result.error = "circuit_open", "every endpoint's circuit breaker is open"
                result.errors_by_kind["circuit_open"] = result.errors_by_kind.get("circuit_open", 0) + 1
                break
            result.endpoint = ep.base
            wait: float | None = None
            ok = False
            retryable = True
            try:
                resp = ep.session.post(ep.url, data=payload, headers=headers, timeout=(s.connect_timeout_s, s.timeout_s))
                if resp.status_code == 200:
                    try:
                        self._parse(resp.json(), result, self.settings.keep_thinking)
                        ok = True
                    except (ValueError, KeyError, TypeError, IndexError) as exc:
                        kind, msg = "malformed", f"malformed response body: {_short(str(exc))}"
                else:
                    kind = f"http_{resp.status_code}"
                    msg = f"HTTP {resp.status_code}: {_short(resp.text)}"
                    retryable = resp.status_code in RETRYABLE_STATUS
                    wait = _retry_after(resp.headers.get("Retry-After"))
            except requests.Timeout as exc:
                kind, msg = "timeout", f"timeout after {s.timeout_s}s ({type(exc).__name__})"
            except requests.ConnectionError as exc:
                kind, msg = "connection", f"connection error: {_short(str(exc))}"
            except requests.RequestException as exc:
                kind, msg = "request", f"request error: {_short(str(exc))}"
            # a request the server refuses as malformed says nothing about the endpoint's health
            self._release(ep, ok or not retryable)
            if ok:
                result.status, result.error_kind, result.error = "ok", None, None
                used = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
                self.limiter.settle(reserved, used if result.prompt_tokens is not None else None)
                break
            last = ep
            result.error_kind, result.error = kind, msg
            result.errors_by_kind[kind] = result.errors_by_kind.get(kind, 0) + 1
            if not retryable or attempt == s.max_attempts:
                break
            delay = self._backoff(attempt)
            if wait is not None:
                delay = max(delay, min(wait, max(60.0, s.backoff_max_s * 4)))  # honour Retry-After, bounded
            self._sleep(delay)
        result.latency_s = time.monotonic() - start
        return result

    @staticmethod
    def _parse(body: Any, result: CallResult, keep_thinking: bool) -> None:
        choices = body["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("no choices in response")
        parsed = []
        for ch in sorted(choices, key=lambda c: c.get("index", 0)):
            msg = ch["message"]
            text = msg.get("content")
            if text is None:
                raise ValueError("choice without content")
            # vLLM's reasoning parser splits the thinking out (``reasoning_content``; ``reasoning`` in
            # newer servers): a stored trace has it back in front of the written solution; every other
            # purpose keeps the written answer only
            if keep_thinking:
                text = with_think_block(text, msg.get("reasoning_content") or msg.get("reasoning"))
            else:
                text = without_thinking(text)
            parsed.append({"text": text, "finish_reason": ch.get("finish_reason")})
        usage = body.get("usage") or {}
        result.choices = parsed
        result.prompt_tokens = usage.get("prompt_tokens")
        result.completion_tokens = usage.get("completion_tokens")
