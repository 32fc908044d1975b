"""Ports on 127.0.0.1 for servers the tests start (a Spark Connect server, a standalone master), and waits
on a condition instead of fixed sleeps."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, what: str, seconds: float) -> None:
    """Until ``proc`` listens on ``port``; the test fails with the end of its log if it exits or takes
    longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited: {log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"{what} did not open its port in {seconds:.0f} s: {log.read_text()[-2000:]}")


def wait_for(condition, seconds: float, what: str, poll_s: float = 0.1) -> None:
    """Until ``condition()`` is true; the test fails naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}")
        time.sleep(poll_s)


def server_quiet(stats) -> bool:
    """A test model server (``stats()`` → its counters) answers nothing and is asked nothing new for half a
    second: whatever a killed driver left in flight has finished."""
    first = stats()
    if first["in_flight"]:
        return False
    time.sleep(0.5)
    second = stats()
    return second["in_flight"] == 0 and second["requests"] == first["requests"]

