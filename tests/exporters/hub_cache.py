"""Hugging Face hub stand-ins for tests: a cache laid out as huggingface_hub writes it, and a
local HTTP server that answers the hub's API for one repository (no network)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def add_to_cache(
    cache: Path, repo_id: str, folder: Path, commit: str, refs: tuple[str, ...] = ("main",)
) -> Path:
    """Put ``folder``'s files into ``cache`` as snapshot ``commit`` of ``repo_id``, as the hub's
    cache holds them: content in ``blobs/<sha256>``, relative symlinks in ``snapshots/<commit>/``,
    each ref in ``refs/<name>`` holding the commit hash (no newline). Returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(folder.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit, encoding="utf-8")
    return snapshot


class FakeHub:
    """What the hub answers for one repository: ``files`` at ``commit`` (branch ``main``), or an
    error (``status``, ``X-Error-Code``) for every request. ``requests`` records the paths asked."""

    def __init__(self, repo_id: str, commit: str, files: dict[str, bytes]) -> None:
        self.repo_id, self.commit, self.files = repo_id, commit, files
        self.error: tuple[int, str | None] | None = None
        self.requests: list[str] = []

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(f"{method} {path}")
        if self.error is not None:
            status, code = self.error
            return status, ({"X-Error-Code": code} if code else {}), b'{"error": "fake"}'
        api = f"/api/models/{self.repo_id}/"
        if path.startswith(api + "revision/"):
            if path.removeprefix(api + "revision/") not in ("main", self.commit):
                return 404, {"X-Error-Code": "RevisionNotFound"}, b"{}"
            return 200, {}, json.dumps({"id": self.repo_id, "sha": self.commit}).encode()
        if path.startswith(api + "tree/"):
            listing = [
                {
                    "type": "file",
                    "path": name,
                    "size": len(data),
                    "oid": hashlib.sha1(data).hexdigest(),
                }
                for name, data in self.files.items()
            ]
            return 200, {}, json.dumps(listing).encode()
        prefix = f"/{self.repo_id}/resolve/{self.commit}/"
        name = path.removeprefix(prefix)
        if path.startswith(prefix) and name in self.files:
            data = self.files[name]
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            return (
                200,
                {"X-Repo-Commit": self.commit, "ETag": etag, "Content-Length": str(len(data))},
                data,
            )
        return 404, {"X-Error-Code": "EntryNotFound"}, b"{}"


@contextmanager
def serve(hub: FakeHub) -> Iterator[str]:
    """Serve ``hub`` on 127.0.0.1; yields its endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bool) -> None:
            status, headers, data = hub.answer(self.command, unquote(urlsplit(self.path).path))
            self.send_response(status)
            for key, value in {
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
                **headers,
            }.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(body=True)

        def do_HEAD(self) -> None:
            self._reply(body=False)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
