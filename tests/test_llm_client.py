"""The OpenAI-compatible client and the sliding window, against the real HTTP test server (no Spark)."""

from __future__ import annotations

import os
import socket

import pytest

from mfr.llm.client import ChatRequest, ClientSettings, MissingEndpoint, OpenAIClient, _Breaker
from mfr.llm.images import image_data_url, scale_factor
from mfr.llm.keys import KeySet, request_key
from mfr.llm.window import grouped_windows, sliding_window
from tests.openai_server import OpenAIServer, ServerSettings


def _settings(*urls, **kw):
    base = dict(max_concurrency=32, timeout_s=2.0, connect_timeout_s=1.0, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)
    base.update(kw)
    return ClientSettings(tuple(urls), "test-model", **base)


def _req(i=0, **params):
    return ChatRequest(f"key-{i}", [{"role": "user", "content": "Solve. Reply with <answer>."}], {"max_tokens": 50, **params})


@pytest.mark.parametrize("fault", ["http_500", "reset", "malformed", "http_429", "hang"])
def test_each_fault_is_retried_then_succeeds(fault):
    sleeps = []
    with OpenAIServer(ServerSettings(faults={fault: 1.0}, fault_attempts=1, hang_s=5, retry_after_s=1)) as srv:
        client = OpenAIClient(_settings(srv.url, timeout_s=0.5), sleep=sleeps.append)
        res = client.call(_req())
    assert res.status == "ok" and res.attempts == 2, res
    kind = {"http_500": "http_500", "reset": "connection", "malformed": "malformed", "http_429": "http_429", "hang": "timeout"}[fault]
    assert res.errors_by_kind == {kind: 1}
    assert res.text.endswith("</answer>") and res.finish_reason == "stop"
    assert res.completion_tokens > 0 and res.prompt_tokens == 100
    if fault == "http_429":
        assert sleeps[0] >= 1.0  # Retry-After honoured
    else:
        assert 0 <= sleeps[0] <= 0.01


def test_retries_are_capped_and_error_recorded():
    with OpenAIServer(ServerSettings(faults={"http_500": 1.0})) as srv:
        res = OpenAIClient(_settings(srv.url), sleep=lambda s: None).call(_req())
        assert srv.requests == 4
    assert res.status == "error" and res.attempts == 4 and res.error_kind == "http_500"
    assert "engine failure" in res.error


def test_client_errors_are_not_retried():
    with OpenAIServer() as srv:
        res = OpenAIClient(_settings(srv.url + "/nope"), sleep=lambda s: None).call(_req())
        assert srv.requests == 0  # the 404 route is not a completion
    assert res.status == "error" and res.attempts == 1 and res.error_kind == "http_404"


def test_truncated_output_is_returned_with_finish_reason_length():
    with OpenAIServer(ServerSettings(faults={"truncated": 1.0})) as srv:
        res = OpenAIClient(_settings(srv.url)).call(_req())
    assert res.status == "ok" and res.finish_reason == "length"


def test_n_samples_in_one_request():
    with OpenAIServer() as srv:
        res = OpenAIClient(_settings(srv.url)).call(_req(n=4))
        assert srv.requests == 1
    assert len(res.choices) == 4 and all(c["finish_reason"] == "stop" for c in res.choices)


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("message", [
    {"reasoning_content": "Let me think.", "content": "The solution. <answer>7</answer>"},  # vLLM's reasoning parser
    {"reasoning": "Let me think.", "content": "The solution. <answer>7</answer>"},  # newer servers' field name
    {"content": "Let me think.</think>The solution. <answer>7</answer>"},  # the template opened <think>
    {"content": "<think>Let me think.</think>The solution. <answer>7</answer>"},  # inline
])
def test_the_thinking_is_stored_in_front_of_the_written_solution_however_the_server_returns_it(message):
    with OpenAIServer(responder=lambda body, i, words: dict(message)) as srv:
        res = OpenAIClient(_settings(srv.url, keep_thinking=True)).call(_req())
        other = OpenAIClient(_settings(srv.url)).call(_req())  # a caption, a verdict: the written answer only
    assert res.status == "ok" and res.text == "<think>Let me think.</think>The solution. <answer>7</answer>"
    assert other.status == "ok" and other.text == "The solution. <answer>7</answer>"


def test_a_dump_shaped_teacher_reply_is_a_valid_trace_with_its_written_solution():
    from mfr.prompts import load_prompt
    from mfr.text.cot import cot_problem, parse_trace
    from tests.openai_server import dump_shaped_responder

    template, _ = load_prompt("distill.txt")
    with OpenAIServer(responder=dump_shaped_responder) as srv:
        res = OpenAIClient(_settings(srv.url, keep_thinking=True)).call(
            ChatRequest("k", [{"role": "user", "content": template.replace("{question}", "How long? ANSWER=5cm")}], {}))
    trace = parse_trace(res.text)
    assert cot_problem(res.text, 200) is None and trace.final_answer == "5cm"
    assert trace.think.startswith("Okay") and "### Phase 4: Solution Validation" in trace.solution
    assert trace.solution.rstrip().endswith("Therefore, the final answer is <answer>5cm</answer>.")


def test_breaker_fails_a_dead_endpoint_fast():
    client = OpenAIClient(_settings(_dead_url(), max_attempts=2, breaker_cooldown_s=60), sleep=lambda s: None)
    results = [client.call(_req(i)) for i in range(30)]
    kinds = [r.error_kind for r in results]
    assert kinds[0] == "connection" and kinds[-1] == "circuit_open"
    failed = client.call(_req(99))
    # refused before any connection: no endpoint was tried, nothing was waited for
    assert failed.error_kind == "circuit_open" and failed.endpoint is None and failed.attempts == 1


def test_breaker_half_opens_after_cooldown():
    b = _Breaker(window=4, rate=0.9, cooldown=10)
    for _ in range(4):
        b.record(False, now=0)
    assert not b.available(5)
    assert b.available(11) and not b.available(11)  # one probe only
    b.record(True, now=11)
    assert b.available(12)


def test_replicas_share_load_and_a_dead_one_is_skipped():
    with OpenAIServer() as a, OpenAIServer() as b:
        client = OpenAIClient(_settings(a.url, b.url))
        list(sliding_window(client.call, [_req(i) for i in range(200)], 16))
        assert abs(a.requests - b.requests) <= 40
    with OpenAIServer() as live:
        client = OpenAIClient(_settings(_dead_url(), live.url), sleep=lambda s: None)
        results = list(sliding_window(client.call, [_req(i) for i in range(100)], 8))
    assert all(r.status == "ok" for r in results)


def test_sliding_window_keeps_the_window_full():
    with OpenAIServer(ServerSettings(latency_mean_s=0.05, latency_sigma=1.0, capacity=1000, seed=3)) as srv:
        client = OpenAIClient(_settings(srv.url))
        results = list(sliding_window(client.call, (_req(i) for i in range(400)), 20))
        assert srv.peak_in_flight == 20
    assert len({r.request_key for r in results}) == 400


def test_sliding_window_never_waits_for_its_slowest_request():
    """The first request is held until 30 later ones have run: waves of 4 would deadlock (and time out)."""
    import threading

    release, started, lock = threading.Event(), [], threading.Lock()

    def call(i: int) -> int:
        with lock:
            started.append(i)
            if len(started) > 30:
                release.set()
        if i == 0:
            assert release.wait(30), "the window waited for its slowest request"
        return i

    done = list(sliding_window(call, range(40), 4))
    assert sorted(done) == list(range(40))
    assert done.index(0) > 25  # the held request finished after the others had flowed past it


def test_grouped_windows_keep_each_endpoint_full_whatever_the_order():
    """All of group a's requests come first: group b still gets its own window from the start."""
    import threading
    import time

    lock = threading.Lock()
    flying = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    b_started_while_a_had = []

    def call(item: tuple[str, int]) -> tuple[str, int]:
        group = item[0]
        with lock:
            flying[group] += 1
            peak[group] = max(peak[group], flying[group])
            if group == "b":
                b_started_while_a_had.append(flying["a"])
        time.sleep(0.01)
        with lock:
            flying[group] -= 1
        return item

    reqs = [("a", ("a", i)) for i in range(60)] + [("b", ("b", i)) for i in range(30)]
    done = list(grouped_windows(call, reqs, {"a": 4, "b": 3}, lookahead=100))
    assert sorted(done) == sorted(r for _, r in reqs)
    assert peak == {"a": 4, "b": 3}  # each window full, never over
    assert b_started_while_a_had[0] > 0  # b did not wait for a's requests to finish


def test_grouped_windows_finish_the_calls_in_flight_when_the_input_fails():
    def source():
        for i in range(10):
            yield 0, i
        raise RuntimeError("the input broke")

    got = []
    with pytest.raises(RuntimeError, match="input broke"):
        for r in grouped_windows(lambda i: i, source(), {0: 4}):
            got.append(r)
    assert sorted(got) == list(range(10))  # every request read before the failure was answered and handed out


def test_grouped_windows_refuse_an_unknown_group():
    with pytest.raises(KeyError):
        list(grouped_windows(lambda i: i, [("x", 1)], {0: 2}))


def test_api_key_only_in_the_header(monkeypatch):
    monkeypatch.setenv("MFR_TEST_KEY", "sk-secret-value-123")
    settings = ClientSettings.from_section({"api_base": "http://127.0.0.1:1/v1", "model": "m", "api_key_env": "MFR_TEST_KEY"})
    assert "sk-secret" not in repr(settings)
    res = OpenAIClient(settings, sleep=lambda s: None).call(_req())
    assert res.status == "error" and "sk-secret" not in repr(res)
    with pytest.raises(MissingEndpoint, match="distillation.cot.client.api_base"):
        ClientSettings.from_section({"api_base": None, "model": None}, "distillation.cot.client")
    with pytest.raises(MissingEndpoint, match="NOT_SET_ANYWHERE"):
        ClientSettings.from_section({"api_base": "http://x/v1", "model": "m", "api_key_env": "NOT_SET_ANYWHERE"})


def test_every_client_setting_of_the_config_reaches_the_client():
    """One declaration per setting: each key of a client section (the schema's) arrives in ClientSettings,
    with no copy to keep in step; api_base and api_key_env arrive as the replicas and the key."""
    import dataclasses

    from mfr.settings import ClientConfig

    given = {"api_base": ["http://a/v1/", "http://b/v1"], "model": "m", "max_concurrency": 3, "timeout_s": 7.5,
             "max_attempts": 2, "connect_timeout_s": 1.5, "backoff_base_s": 0.25, "backoff_max_s": 4.0,
             "breaker_cooldown_s": 9.0, "requests_per_s": 11.0, "tokens_per_min": 1200.0,
             "response_format": {"type": "json_object"}, "extra_body": {"top_k": 5}}
    assert set(given) | {"api_key_env"} == {f.name for f in dataclasses.fields(ClientConfig)}  # every key is given
    settings = ClientSettings.from_section(given)
    assert settings.api_bases == ("http://a/v1", "http://b/v1") and settings.api_key is None
    for key, value in given.items():
        if key != "api_base":
            assert getattr(settings, key) == value, key


def test_request_key_is_deterministic_and_sensitive():
    k = request_key("s:1", "cot", "distill@abc", "m", {"temperature": 1.0, "seed": 0}, 0)
    assert k == request_key("s:1", "cot", "distill@abc", "m", {"seed": 0, "temperature": 1.0}, 0)
    assert k != request_key("s:1", "cot", "distill@abc", "m", {"temperature": 1.0, "seed": 0}, 1)
    assert k != request_key("s:1", "cot", "distill@abd", "m", {"temperature": 1.0, "seed": 0}, 0)


def test_finished_calls_are_committed_by_count_by_text_size_or_by_time_whichever_comes_first():
    from mfr.llm.store import commit_due

    limits = {"every": 100, "max_bytes": 1000, "interval_s": 60.0}
    assert not commit_due(0, 0, 3600.0, **limits)  # nothing held: nothing to commit, however long
    assert not commit_due(99, 999, 59.0, **limits)
    assert commit_due(100, 10, 1.0, **limits)
    assert commit_due(3, 1000, 1.0, **limits)  # three 2000-word traces can weigh more than the count allows
    assert commit_due(1, 1, 60.0, **limits)


def test_key_set_remembers_every_key_added_across_folds_and_nothing_else():
    keys = [request_key(f"s:{i}", "cot", "v", "m", {}, 0) for i in range(150_000)]
    seen = KeySet()
    for k in keys[:100_000]:  # more than one fold into the sorted array
        seen.add(k)
    seen.add("not-a-hex-key")
    assert all(k in seen for k in keys[:100_000:7]) and "not-a-hex-key" in seen
    assert not any(k in seen for k in keys[100_000:])
    assert "other" not in seen and len(seen) == 100_001


def test_image_scaling_rules():
    assert scale_factor(100, 100) == 1.0
    assert scale_factor(10, 100) == pytest.approx(3.2)
    assert scale_factor(4096, 1000) == 0.5
    assert scale_factor(4096, 10) == 0.5  # both apply: the long side wins
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (3000, 20), (255, 0, 0, 0)).save(buf, format="PNG")
    url = image_data_url(buf.getvalue())
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.size == (2048, 14) and im.mode == "RGB"
        assert im.getpixel((5, 5))[1] > 200  # transparent composited on white, not black


def test_rate_limiter_buckets_with_a_fake_clock():
    from mfr.llm.ratelimit import RateLimiter

    now = [0.0]

    def sleep(s):
        now[0] += s

    rl = RateLimiter(requests_per_s=10, clock=lambda: now[0], sleep=sleep)
    for _ in range(25):
        rl.acquire(0)
    assert now[0] == pytest.approx(1.5)  # a second's burst (10), then 10 per second
    now[0] = 0.0
    tl = RateLimiter(tokens_per_min=600, clock=lambda: now[0], sleep=sleep)  # 10/s, holds 100
    tl.acquire(60)
    assert now[0] == 0.0
    tl.acquire(60)  # 40 left: waits for 20 more
    assert now[0] == pytest.approx(2.0)
    tl.settle(60, 10)  # the server counted 10: 50 come back
    tl.acquire(50)
    assert now[0] == pytest.approx(2.0)
    tl.acquire(500)  # larger than the bucket: waits for a full one, then owes the rest
    assert now[0] == pytest.approx(12.0)
    tl.acquire(10)
    assert now[0] == pytest.approx(12.0 + 41.0)  # the debt of 400 is paid first
    off = RateLimiter()
    off.acquire(10**9)
    assert not off.active


def test_token_estimate_counts_text_images_and_the_completion_budget():
    from mfr.llm.ratelimit import IMAGE_TOKENS, estimate_tokens

    messages = [{"role": "system", "content": "x" * 400},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10**6}},
                                             {"type": "text", "text": "y" * 40}]}]
    assert estimate_tokens(messages, {"max_tokens": 1000, "n": 4}) == 110 + IMAGE_TOKENS + 4000


def test_client_caps_hold_across_its_threads_and_fields_pass_through():
    with OpenAIServer() as srv:
        settings = _settings(srv.url, requests_per_s=20.0, response_format={"type": "json_object"},
                             extra_body={"top_k": 20, "max_tokens": 1})
        client = OpenAIClient(settings, share=2)  # one of two tasks: 10 requests/s of its own
        results = list(sliding_window(client.call, (_req(i) for i in range(30)), 16))
    assert all(r.status == "ok" for r in results)
    arrivals = sorted(srv.arrivals)
    first_second = [a for a in arrivals if a - arrivals[0] < 1.0]
    assert len(first_second) <= 20, len(first_second)  # a burst of 10 and 10 per second
    assert arrivals[-1] - arrivals[0] >= 1.9  # 30 requests at 10/s after the burst of 10
    body = srv.bodies[0]
    assert body["response_format"] == {"type": "json_object"} and body["top_k"] == 20
    assert body["max_tokens"] == 50  # the request's own parameter wins over extra_body


class _Settings:
    """A session's settings as a cluster shows them (a stand-in: only ``conf.get`` is asked)."""

    def __init__(self, **confs: str) -> None:
        self.conf = self
        self._confs = {k.replace("_", "."): v for k, v in confs.items()}

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._confs.get(key, default)


@pytest.mark.parametrize("confs, tasks", [
    ({"spark_default_parallelism": "48"}, 48),
    ({"spark_master": "local[3]"}, 3),
    ({"spark_master": "local-cluster[2,4,1024]"}, 8),
    ({"spark_master": "local[*, 4]"}, os.cpu_count()),  # Databricks' single node
    ({"spark_master": "spark://10.0.0.1:7077", "spark_sql_shuffle_partitions": "64"}, 64),
    ({"spark_master": "spark://10.0.0.1:7077", "spark_sql_shuffle_partitions": "auto"}, 200),  # Databricks
    ({"spark_default_parallelism": "", "spark_sql_shuffle_partitions": "auto"}, 200),  # Connect: no master
])
def test_call_tasks_come_from_what_the_session_says(confs, tasks):
    from mfr.llm.planning import parallelism

    assert parallelism(_Settings(**confs), None) == tasks
    assert parallelism(_Settings(**confs), 5) == 5  # llm.tasks wins
