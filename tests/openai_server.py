"""An OpenAI-compatible chat-completions server for tests and benchmarks (a test double; tests only).

Real HTTP/1.1 with keep-alive on asyncio, so one process serves hundreds of concurrent requests. Switches:

* latency: lognormal with a given mean (seconds) and sigma, per request;
* capacity: at most this many requests are served at once; the rest queue (vLLM shows overload as latency);
* faults, each a probability per request: ``http_500``, ``reset`` (connection closed without a reply),
  ``hang`` (no reply until ``hang_s``), ``malformed`` (200 with a broken body), ``http_429`` (with
  ``Retry-After``), ``truncated`` (``finish_reason: length``);
* ``fault_attempts``: faults hit only the first K attempts of each request key (deterministic tests);
* ``n``: several choices in one response.

Run in a thread (``with OpenAIServer(...) as srv``) or as its own process (``python -m
tests.openai_server --port P ...``) for benchmarks, where client and server must not share a GIL.
Statistics (requests, successes per request key, peak concurrency) are in ``stats()`` or ``GET /stats``;
``POST /settings`` with ``{"latency_mean_s": x}`` changes the latency of later requests (a test that needs a
slow teacher only until some moment, then a fast one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FAULTS = ("http_500", "reset", "hang", "malformed", "http_429", "truncated")


@dataclass
class ServerSettings:
    latency_mean_s: float = 0.0
    latency_sigma: float = 0.5
    capacity: int = 1024
    faults: dict[str, float] = field(default_factory=dict)
    fault_attempts: int | None = None
    hang_s: float = 30.0
    retry_after_s: int = 1
    seed: int = 0
    words: int = 160  # words in a generated answer


def default_responder(body: dict[str, Any], index: int, words: int) -> str:
    """Content of one choice: a think/answer trace when the prompt asks for tags, else a description."""
    text = json.dumps(body.get("messages", []))
    filler = " ".join(f"w{(i * 7 + index) % 97}" for i in range(words))
    if "<answer>" in text:
        answer = _steered_answer(text)
        return f"<think>Phase one: I read the image. {filler} So the result is {answer}.</think>\n<answer>{answer}</answer>"
    return f"The image shows a diagram. {filler}"


def _steered_answer(text: str) -> str:
    if "ANSWER=" in text:  # tests can steer the answer through the question
        return text.split("ANSWER=", 1)[1].split("\\", 1)[0].split('"', 1)[0].split()[0]
    return "42"


def dump_shaped_responder(body: dict[str, Any], index: int, words: int,
                          answers: dict[str, str] | None = None) -> str | dict[str, str]:
    """Answers in the shapes of the published dump: a CoT prompt gets native thinking in
    ``reasoning_content`` and a written solution in four phases ending with the final-answer line; a
    caption prompt gets the markdown block with its bolded sections. Other prompts: the default.
    ``answers``: question text -> the answer to give when the prompt holds that question."""
    text = json.dumps(body.get("messages", []))
    filler = " ".join(f"w{(i * 7 + index) % 97}" for i in range(words))
    if "final answer is <answer>" in text:
        answer = next((a for q, a in (answers or {}).items() if q and json.dumps(q)[1:-1] in text), None) or _steered_answer(text)
        thinking = f"Okay, let me look at the figure first. {filler} So the answer should be {answer}."
        solution = "\n\n".join([
            f"### Phase 1: Comprehensive Information Extraction\nThe figure gives {filler[:200]}.",
            "### Phase 2: Strategic Problem Setup\nWe need the value asked for, using the relations above.",
            f"### Phase 3: Rigorous Solution Execution\nWorking step by step, {filler[:300]} gives {answer}.",
            "### Phase 4: Solution Validation\nThe result agrees with the figure and every part is answered.",
            f"Therefore, the final answer is <answer>{answer}</answer>.",
        ])
        return {"reasoning_content": thinking, "content": "\n\n" + solution}
    if "### Image 1: <Category>" in text:
        return "\n\n".join([
            "### Image 1: Geometric Diagram",
            f"**Scene Summary:** A labelled diagram of a triangle. {filler[:120]}",
            f"**Explicit Component Breakdown:**\n* **Side AB (`AB`):** length 5 cm. {filler[:200]}",
            f"**Interactions and Relationships:**\n* Side AB meets side BC at B. {filler[:200]}",
            "**Implicit and Inferred Properties:**\n* **Triangle ABC:** the question states it is isosceles.",
            "**Identified Ambiguities:**\n* None.",
        ])
    return default_responder(body, index, words)


RESPONDERS = {"default": default_responder, "dump": dump_shaped_responder}


class OpenAIServer:
    def __init__(
        self,
        settings: ServerSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Callable[[dict[str, Any], int, int], str | dict[str, str]] = default_responder,
    ):
        self.settings = settings or ServerSettings()
        self.host, self.port = host, port
        self.responder = responder
        self.rng = random.Random(self.settings.seed)
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.fault_counts: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request (in-process servers only)
        self.authorizations: set[str] = set()
        self.first_request_at: float | None = None
        self.busy_slot_s = 0.0
        self.last_response_at: float | None = None
        self.keep_bodies = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> "OpenAIServer":
        self._thread = threading.Thread(target=self._run_loop, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.start())
        self._ready.set()
        self._loop.run_forever()

    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self.settings.capacity)
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "faults": dict(self.fault_counts),
            "successes": sum(self.successes.values()),
            "duplicate_successes": sum(v - 1 for v in self.successes.values() if v > 1),
            "keys": len(self.attempts),
            "busy_s": (self.last_response_at - self.first_request_at) if self.first_request_at and self.last_response_at else 0.0,
            "busy_slot_s": self.busy_slot_s,  # service time summed over requests (slot-seconds the engine was busy)
            "first_request_at": self.first_request_at,
            "last_response_at": self.last_response_at,
        }

    # ---- HTTP ----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode("latin-1").split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                keep = await self._dispatch(method, path, headers, body, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)

    def _latency(self) -> float:
        m = self.settings.latency_mean_s
        if m <= 0:
            return 0.0
        sigma = self.settings.latency_sigma
        return self.rng.lognormvariate(math.log(m) - sigma * sigma / 2, sigma)  # mean of the lognormal = m

    def _fault(self, key: str) -> str | None:
        if self.settings.fault_attempts is not None and self.attempts[key] > self.settings.fault_attempts:
            return None
        for name in FAULTS:
            p = self.settings.faults.get(name, 0.0)
            if p and self.rng.random() < p:
                return name
        return None

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes, writer) -> bool:
        if method == "GET" and path.startswith("/stats"):
            self._send(writer, 200, json.dumps(self.stats()).encode())
            await writer.drain()
            return True
        if method == "POST" and path.startswith("/settings"):
            self.settings.latency_mean_s = float(json.loads(raw)["latency_mean_s"])
            self._send(writer, 200, b"{}")
            await writer.drain()
            return True
        if method == "GET" and path.rstrip("/").endswith("/models"):
            self._send(writer, 200, b'{"object":"list","data":[{"id":"test-model","object":"model"}]}')
            await writer.drain()
            return True
        if method != "POST" or path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._send(writer, 404, b'{"error":"not found"}')
            await writer.drain()
            return True
        self.requests += 1
        self.arrivals.append(time.monotonic())
        if self.first_request_at is None:
            self.first_request_at = time.time()
        body = json.loads(raw)
        key = headers.get("x-mfr-request-key") or str(hash(raw))
        self.attempts[key] += 1
        if "authorization" in headers:
            self.authorizations.add(headers["authorization"])
        if self.keep_bodies:
            self.bodies.append(body)
        async with self._sem:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                fault = self._fault(key)
                if fault:
                    self.fault_counts[fault] += 1
                delay = self._latency()
                if fault == "hang":
                    await asyncio.sleep(self.settings.hang_s)
                    return False
                if delay:
                    await asyncio.sleep(delay)
                    self.busy_slot_s += delay
            finally:
                self.in_flight -= 1
        if fault == "reset":
            writer.transport.abort()
            return False
        if fault == "http_500":
            self._send(writer, 500, b'{"error":{"message":"engine failure","type":"InternalServerError"}}')
        elif fault == "http_429":
            self._send(writer, 429, b'{"error":"rate limited"}', {"Retry-After": str(self.settings.retry_after_s)})
        elif fault == "malformed":
            self._send(writer, 200, b'{"id": "cmpl-1", "choices": [{"index": 0, "message": {"content": "trunc')
        else:
            self._send(writer, 200, json.dumps(self._completion(body, key, truncated=fault == "truncated")).encode())
            if fault != "truncated":
                self.successes[key] += 1
        self.last_response_at = time.time()
        await writer.drain()
        return True

    def _completion(self, body: dict[str, Any], key: str, truncated: bool) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        choices = []
        for i in range(n):
            reply = self.responder(body, i, self.settings.words)
            message = {"role": "assistant", **(reply if isinstance(reply, dict) else {"content": reply})}
            if truncated:
                message["content"] = message["content"][: len(message["content"]) // 3]
            choices.append({
                "index": i,
                "message": message,
                "finish_reason": "length" if truncated else "stop",
            })
        completion_tokens = sum(len((c["message"]["content"] + c["message"].get("reasoning_content", "")).split()) for c in choices)
        return {
            "id": f"cmpl-{key[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": 100, "completion_tokens": completion_tokens, "total_tokens": 100 + completion_tokens},
        }


def wrong_first(question: str, share: float) -> bool:
    """Whether ``question`` is one of the ``share`` whose first sample answers wrong (stable across processes)."""
    import hashlib

    return int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 10_000 < share * 10_000


def first_wrong_responder(gold: dict[str, str], share: float):
    """The dump-shaped responder giving the gold answer, except the first sample (seed 0) of ``share`` of the
    questions, which gives a wrong one."""
    wrong = {q: "wrong-first" for q in gold if wrong_first(q, share)}

    def respond(body: dict[str, Any], index: int, words: int) -> str | dict[str, str]:
        first = body.get("seed") == 0 and wrong
        return dump_shaped_responder(body, index, words, {**gold, **wrong} if first else gold)

    return respond


def gold_answers(dump: Path) -> dict[str, str]:
    """Question (without its image tag) -> gold answer, from a dump folder's parquet files."""
    import pyarrow.parquet as pq

    gold = {}
    for f in sorted(dump.rglob("*.parquet")):
        for row in pq.read_table(f, columns=["question", "answer"]).to_pylist():
            if row["question"] and row["answer"]:
                gold[row["question"].replace("<image>", "").strip()] = row["answer"]
    return gold


def spawn(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server as its own process (``args``: the command-line switches) and wait for its port;
    returns the process and its ``/v1`` URL. The port is handed over in a file under ``folder``."""
    port_file = Path(folder) / f"port-{time.time_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "tests.openai_server", *args, "--port-file", str(port_file)],
                            cwd=Path(__file__).resolve().parents[1], env=env)
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("test server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-mean", type=float, default=0.0)
    parser.add_argument("--latency-sigma", type=float, default=0.5)
    parser.add_argument("--capacity", type=int, default=1024)
    parser.add_argument("--faults", default="{}", help='JSON, e.g. {"http_500": 0.05}')
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--responder", choices=sorted(RESPONDERS), default="default",
                        help="dump: answers in the published dump's shapes (thinking field, markdown captions)")
    parser.add_argument("--answers-from", help="a dump folder: the dump responder gives each question's gold answer")
    parser.add_argument("--first-wrong-share", type=float, default=0.0,
                        help="with --answers-from: the first sample (seed 0) of this share of the questions (by a hash "
                             "of the question) answers wrong")
    args = parser.parse_args()
    responder = RESPONDERS[args.responder]
    if args.answers_from:
        gold = gold_answers(Path(args.answers_from))
        responder = first_wrong_responder(gold, args.first_wrong_share)
    srv = OpenAIServer(
        ServerSettings(args.latency_mean, args.latency_sigma, args.capacity, json.loads(args.faults), None, args.hang_s, seed=args.seed),
        port=args.port, responder=responder,
    )
    srv.keep_bodies = False

    async def serve() -> None:
        await srv.start()
        if args.port_file:
            with open(args.port_file, "w") as fh:
                fh.write(str(srv.port))
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
