"""Fetching Delta's jars: which Maven artifact a pip pyspark + delta-spark pair needs, and a one-line reason
when Spark's resolver cannot fetch it (a delta-spark release on PyPI whose jars Maven Central lacks)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mfr.jars import delta_coordinates, published_versions, unpublished, unresolved
from tests.local_ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("delta, spark, artifact", [
    ("3.3.2", "3.5.5", "io.delta:delta-spark_2.12:3.3.2"),        # Spark 3.5: Scala 2.12, one build
    ("4.0.0", "4.0.1", "io.delta:delta-spark_2.13:4.0.0"),        # Spark 4.0: Scala 2.13, one build
    ("4.3.1", "4.1.1", "io.delta:delta-spark_4.1_2.13:4.3.1"),    # from Delta 4.1: one build per Spark minor
    ("4.4.0", "4.2.0", "io.delta:delta-spark_4.2_2.13:4.4.0"),
])
def test_delta_artifact_per_spark(delta, spark, artifact):
    assert delta_coordinates(delta, spark) == artifact


# What Maven Central listed for Spark 4.2's Delta build on 2026-12-05 (a pre-release added to check it is
# never suggested); delta-spark 4.4.1 was on PyPI then, its jars were not.
_METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<metadata><groupId>io.delta</groupId><artifactId>delta-spark_4.2_2.13</artifactId>
<versioning><latest>4.5.0-rc1</latest><release>4.4.0</release><versions>
<version>4.3.0</version>
<version>4.4.0</version>
<version>4.5.0-rc1</version>
</versions></versioning></metadata>
"""


@pytest.fixture
def repo() -> Iterator[str]:
    """A Maven-layout repository on 127.0.0.1 that holds one artifact's metadata (404 for anything else)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/maven2/io/delta/delta-spark_4.2_2.13/maven-metadata.xml":
                body = _METADATA.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/maven2"
    server.shutdown()


def test_published_versions_read_from_the_repository(repo):
    assert published_versions("io.delta:delta-spark_4.2_2.13:4.4.1", repo) == ["4.3.0", "4.4.0", "4.5.0-rc1"]
    assert published_versions("io.delta:delta-spark_9.9_2.13:1.0.0", repo) == []  # no such artifact
    assert published_versions("io.delta:delta-spark_4.2_2.13:4.4.1", f"http://127.0.0.1:{free_port()}/maven2", timeout=5) is None


def test_an_unpublished_delta_version_names_the_one_to_install(repo):
    message = str(unresolved("io.delta:delta-spark_4.2_2.13:4.4.1", RuntimeError("Java gateway process exited"), repo))
    assert message == (f"io.delta:delta-spark_4.2_2.13:4.4.1 is not published at {repo} (its newest release there "
                       "is 4.4.0): install a delta-spark whose jars are, e.g. pip install 'delta-spark==4.4.0'")
    # older than every release: the oldest is no help, the newest is named
    older = str(unresolved("io.delta:delta-spark_4.2_2.13:4.2.0", None, repo))
    assert older.endswith("pip install 'delta-spark==4.4.0'")
    # between releases: the newest one not above it
    between = str(unresolved("io.delta:delta-spark_4.2_2.13:4.3.5", None, repo))
    assert between.endswith("pip install 'delta-spark==4.3.0'")


def test_other_fetch_failures_are_one_line(repo):
    missing = str(unresolved("io.delta:delta-spark_9.9_2.13:1.0.0", None, repo))
    assert missing == f"io.delta:delta-spark_9.9_2.13:1.0.0 is not published at {repo} (no release of io.delta:delta-spark_9.9_2.13 is)"
    down = f"http://127.0.0.1:{free_port()}/maven2"
    assert str(unresolved("io.delta:delta-spark_4.2_2.13:4.4.0", None, down)) == (
        f"could not fetch io.delta:delta-spark_4.2_2.13:4.4.0: {down} did not answer (is the package registry reachable?)")
    # published, yet Spark's resolver failed (a proxy, a disk): its own first line, and where its report is
    listed = str(unresolved("io.delta:delta-spark_4.2_2.13:4.4.0", RuntimeError("[JAVA_GATEWAY_EXITED] gone\ntrace"), repo))
    assert listed == (f"could not fetch io.delta:delta-spark_4.2_2.13:4.4.0, which {repo} publishes "
                      "([JAVA_GATEWAY_EXITED] gone): see the resolver's report above")
    assert unpublished("io.delta:delta-spark_4.2_2.13:4.4.0", repo) is None  # a session's other failures stay Spark's
    other = str(unresolved("org.apache.hadoop:hadoop-aws:9.9.9", None, repo))
    assert other.startswith("org.apache.hadoop:hadoop-aws:9.9.9 is not published") and "pip install" not in other
    assert all("\n" not in m for m in (missing, listed, other))


@pytest.mark.slow
def test_fetching_an_unpublished_delta_release_is_one_line(tmp_path):
    """The real thing: Spark's resolver against Maven Central for a Delta version it has never had (the
    registry must be reachable, as `make setup` needs it)."""
    out = subprocess.run([sys.executable, "-m", "mfr.jars", "--delta-version", "4.4.99", "--dest", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("mfr setup: io.delta:") and ":4.4.99 is not published at https://repo1.maven.org/maven2" in last, last
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # nothing half-fetched
