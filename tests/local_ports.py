"""Ports on 127.0.0.1 for servers the tests start (a Spark Connect server, a standalone master)."""

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
