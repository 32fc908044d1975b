"""A local HTTP server standing in for the Hugging Face hub (test double; tests only).

Serves folders as dataset repos with the two routes huggingface_hub uses to list and download files:
``GET /api/datasets/{repo}/tree/{rev}`` (paginated with a Link header, as the hub does) and
``HEAD|GET /datasets/{repo}/resolve/{rev}/{path}``. For uploads it answers ``POST /api/repos/create``,
``POST /api/datasets/{repo}/preupload/{rev}`` (every file "regular", so no LFS round trip) and
``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON, base64 contents), keeping what was pushed in
``uploads[repo][path]`` and the Authorization headers in ``tokens``. Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    def __init__(self, repos: dict[str, Path], page_size: int = 2):
        self.repos = repos
        self.page_size = page_size
        self.log: list[tuple[str, str]] = []
        self.uploads: dict[str, dict[str, bytes]] = {}
        self.created: list[dict] = []
        self.tokens: list[str | None] = []
        self.validated: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def downloads(self) -> list[str]:
        return [p for m, p in self.log if m == "GET" and "/resolve/" in p]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _not_found(self):
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                body = b'{"error": "Repository not found"}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _repo(self, parts):
                repo = "/".join(parts[:2])
                return repo, hub.repos.get(repo)

            def _tree(self, root: Path, query):
                files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
                entries = [
                    {"type": "file", "path": p.relative_to(root).as_posix(), "size": p.stat().st_size,
                     "oid": hashlib.sha1(p.read_bytes()).hexdigest()}
                    for p in files
                ]
                start = int(query.get("cursor", ["0"])[0])
                page = entries[start:start + hub.page_size]
                body = json.dumps(page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if start + hub.page_size < len(entries):
                    nxt = f"{hub.url}{urlparse(self.path).path}?recursive=True&cursor={start + hub.page_size}"
                    self.send_header("Link", f'<{nxt}>; rel="next"')
                self.end_headers()
                self.wfile.write(body)

            def _file(self, path: Path):
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)

            def _route(self):
                url = urlparse(self.path)
                hub.log.append((self.command, url.path))
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "tree":
                    _repo, root = self._repo(parts[2:4])
                    return self._tree(root, parse_qs(url.query)) if root else self._not_found()
                if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                    _repo, root = self._repo(parts[1:3])
                    target = root / "/".join(parts[5:]) if root else None
                    return self._file(target) if target and target.is_file() else self._not_found()
                return self._not_found()

            def _json(self, value, status: int = 200):
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                import base64

                url = urlparse(self.path)
                hub.log.append(("POST", url.path))
                hub.tokens.append(self.headers.get("Authorization"))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if parts == ["api", "validate-yaml"]:  # the card's YAML header is checked before a commit
                    import yaml

                    content = json.loads(body)["content"]
                    header = content.split("---")[1] if content.startswith("---") else ""
                    try:
                        yaml.safe_load(header)
                    except yaml.YAMLError as exc:
                        return self._json({"error": str(exc)}, 400)
                    hub.validated.append(content)
                    return self._json({"warnings": []})
                if parts == ["api", "repos", "create"]:
                    req = json.loads(body)
                    hub.created.append(req)
                    repo = f"{req.get('organization') or 'user'}/{req['name']}"
                    hub.uploads.setdefault(repo, {})
                    return self._json({"url": f"{hub.url}/datasets/{repo}", "name": repo})
                if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
                if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "commit":
                    repo = "/".join(parts[2:4])
                    store = hub.uploads.setdefault(repo, {})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            store[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    return self._json({"commitUrl": f"{hub.url}/datasets/{repo}/commit/{COMMIT}", "commitOid": COMMIT})
                return self._not_found()

            do_GET = _route
            do_HEAD = _route

        return Handler


def private_repo(created: dict) -> bool:
    """Whether a create-repo request asked for a private repo (huggingface_hub < 1 sends ``private``,
    later ones ``visibility``)."""
    return created.get("private") is True or created.get("visibility") == "private"
