"""A stand-in for the model hub on localhost: serves local folders as hub repositories, slowly if asked.

Enough of the hub's HTTP API for `huggingface_hub` downloads (repository info, file metadata, files), so
the studio's download-on-first-use path runs for real with `HF_ENDPOINT` pointing here.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@contextmanager
def serve_hub(repos: dict[str, Path], seconds_per_mib: float = 0.0) -> Iterator[str]:
    """Serve `repos` (hub id -> folder) and yield the endpoint URL; files stream at `seconds_per_mib`."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _repo_and_rest(self, path: str) -> tuple[str | None, str]:
            for repo in repos:
                if path == repo or path.startswith(repo + "/"):
                    return repo, path[len(repo) :].lstrip("/")
            return None, ""

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _info(self, repo: str) -> None:
            siblings = [{"rfilename": name} for name in _files(repos[repo])]
            self._json({"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings})

        def _tree(self, repo: str) -> None:
            folder = repos[repo]
            entries = []
            for name in _files(folder):
                data = (folder / name).read_bytes()
                blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                entries.append({"type": "file", "path": name, "size": len(data), "oid": blob})
            self._json(entries)

        def _json(self, value: object) -> None:
            body = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, repo: str, name: str, with_body: bool) -> None:
            path = repos[repo] / name
            if not path.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not with_body:
                return
            requested.append(f"{repo}/{name}")
            for start in range(0, len(data), CHUNK):
                self.wfile.write(data[start : start + CHUNK])
                time.sleep(seconds_per_mib * CHUNK / 2**20)

        def _route(self, with_body: bool) -> None:
            path = self.path.split("?")[0].lstrip("/")
            if path.startswith("api/models/"):
                repo, rest = self._repo_and_rest(path.removeprefix("api/models/"))
                if repo is not None and (rest == "" or rest.startswith("revision/")):
                    return self._info(repo)
                if repo is not None and rest.startswith("tree/"):
                    return self._tree(repo)
                return self._not_found()
            repo, rest = self._repo_and_rest(path)
            if repo is None or not rest.startswith("resolve/"):
                return self._not_found()
            _, _, name = rest.removeprefix("resolve/").partition("/")  # after the revision
            return self._file(repo, name, with_body)

        def do_GET(self) -> None:  # noqa: N802
            self._route(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(with_body=False)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
