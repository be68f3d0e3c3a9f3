"""Serve a directory tree over HTTP on 127.0.0.1 the way PhysioNet serves ``/files/``.

Behaviour copied from PhysioNet's server (source-formats.md §6): basic auth is honoured only for
``Wget/`` User-Agents (others get 403); missing or wrong credentials give 401 with a Basic
challenge; an account without access to the project gives 403; unknown projects and paths give
404; GET honours ``Range: bytes=N-`` (206, or 416 past the end); each project root serves a
``SHA256SUMS.txt`` (the tree's own file if present, else generated from the tree).

Faults for tests: cut a file's connection after N bytes once, serve a file corrupted once, answer
with an error status once, and hold the first N GETs at a barrier to prove transfers overlap.

Example:
    with FakePhysioNet(tree, users={"alice": "pw"}) as server:
        download_sources(root, base_url=server.base_url, credentials=Credentials("alice", "pw"))
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

CHECKSUM_FILE = "SHA256SUMS.txt"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it (never the credentials)."""

    method: str
    path: str
    range: str | None
    user_agent: str
    status: int


def checksum_lines(project_dir: Path) -> str:
    """``<sha256> <relative path>`` for every file under a project root, sorted, except the sums file."""
    lines = []
    for path in sorted(p for p in project_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(project_dir).as_posix()
        if relative != CHECKSUM_FILE:
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()} {relative}\n")
    return "".join(lines)


class FakePhysioNet:
    """A PhysioNet look-alike over ``tree`` (the directory holding ``<slug>/<version>/...``).

    ``users`` maps usernames to passwords; ``access`` maps ``"slug/version"`` to the usernames allowed
    to read it (a project missing from ``access`` is open to every known user). ``tls`` = (certificate,
    key) PEM files serves HTTPS instead of HTTP.
    """

    def __init__(
        self,
        tree: Path,
        users: dict[str, str],
        access: dict[str, set[str]] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.tree = Path(tree)
        self.users = users
        self.access = access or {}
        self.log: list[Logged] = []
        self.faults: dict[str, tuple[str, int]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: threading.Barrier | None = None
        self.gated = 0
        self.gate_broken = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}/files"

    def __enter__(self) -> FakePhysioNet:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # Fault injection: each applies to the next GET of ``path`` ("slug/version/file") only.
    def cut_once(self, path: str, after: int) -> None:
        """Send the headers of the whole file but close the connection at byte ``after``."""
        self.faults[path] = ("cut", after)

    def corrupt_once(self, path: str) -> None:
        self.faults[path] = ("corrupt", 0)

    def flood(self, path: str) -> None:
        """Every GET of ``path`` sends the file 50 times over, without Content-Length."""
        self.faults[path] = ("flood", 0)

    def html_once(self, path: str) -> None:
        """The next GET of ``path`` answers 200 with an HTML page instead of the file."""
        self.faults[path] = ("html", 0)

    def fail_once(self, path: str, status: int = 503) -> None:
        self.faults[path] = ("fail", status)

    def hold_first_gets(self, count: int, timeout: float = 10.0) -> None:
        """Make the first ``count`` GETs of data files wait for each other (a serial client breaks
        the barrier and sets ``gate_broken``); checksum files pass, as clients fetch them first."""
        self.gate = threading.Barrier(count, timeout=timeout)

    def gets(self, path: str) -> list[Logged]:
        return [entry for entry in self.log if entry.method == "GET" and entry.path == path]

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def take_fault(self, path: str) -> tuple[str, int]:
        """Pop the one-shot fault for ``path``: (kind, value), or ("", 0) when there is none."""
        with self._lock:
            return self.faults.pop(path, ("", 0))

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def wait_at_gate(self) -> None:
        with self._lock:
            gate = self.gate
            if gate is None or self.gated >= gate.parties:
                return
            self.gated += 1
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            self.gate_broken = True

    def user_for(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            username, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return None
        return username if self.users.get(username) == password else None

    def content(self, project: str, relative: str) -> bytes | None:
        path = self.tree / project / relative
        if path.is_file():
            return path.read_bytes()
        if relative == CHECKSUM_FILE:
            return checksum_lines(self.tree / project).encode()
        return None


def _handler_for(server: FakePhysioNet) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each keep-alive response would
    # wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    fake: FakePhysioNet

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log; ``FakePhysioNet.log`` records requests."""

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        self.fake.enter()
        try:
            self._respond(body)
        finally:
            self.fake.leave()

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged before the client can read the response, so a finished client sees every entry.
        user_agent = self.headers.get("User-Agent", "")
        self.fake.record(Logged(self.command, self._relative(), self.headers.get("Range"), user_agent, code))
        super().send_response(code, message)

    def _relative(self) -> str:
        path = unquote(self.path.split("?", 1)[0])
        return path[len("/files/"):] if path.startswith("/files/") else path

    def _respond(self, body: bool) -> int:
        relative = self._relative()
        parts = relative.split("/", 2)
        if not self.path.startswith("/files/") or len(parts) < 3 or ".." in parts[2].split("/"):
            return self._status(404)
        project = f"{parts[0]}/{parts[1]}"
        if not (self.fake.tree / project).is_dir():
            return self._status(404)
        # PhysioNet ignores basic auth from other clients, so they stay anonymous: forbidden.
        if not self.headers.get("User-Agent", "").startswith("Wget/"):
            return self._status(403)
        user = self.fake.user_for(self.headers.get("Authorization"))
        if user is None:
            return self._status(401, {"WWW-Authenticate": 'Basic realm="PhysioNet", charset="UTF-8"'})
        if project in self.fake.access and user not in self.fake.access[project]:
            return self._status(403)
        data = self.fake.content(project, parts[2])
        if data is None:
            return self._status(404)
        if not body:
            return self._send(data, body=False, cut=None)
        if parts[2] != CHECKSUM_FILE:
            self.fake.wait_at_gate()
        kind, value = self.fake.take_fault(relative)
        if kind == "flood":
            self.fake.faults[relative] = (kind, value)  # every time, not once
            return self._flood(data)
        if kind == "html":
            data = b"<!DOCTYPE html>\n<html><body>Please log in</body></html>\n"
        if kind == "fail":
            return self._status(value)
        if kind == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return self._send(data, body=True, cut=value if kind == "cut" else None)

    def _flood(self, data: bytes) -> int:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for _ in range(50):
                self.wfile.write(data)
        except OSError:  # the client hung up, as it should
            pass
        return 200

    def _send(self, data: bytes, body: bool, cut: int | None) -> int:
        start, status, headers, total = 0, 200, {}, len(data)
        match = _RANGE.fullmatch(self.headers.get("Range", "")) if body else None
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
            if start >= total:
                return self._status(416, {"Content-Range": f"bytes */{total}"})
            status, data = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not body:
            return status
        if cut is not None:
            # Content-Length promised everything; stop early and close, like a dropped connection.
            self.wfile.write(data[: max(0, cut - start)])
            self.close_connection = True
            return status
        self.wfile.write(data)
        return status

    def _status(self, status: int, headers: dict[str, str] | None = None) -> int:
        message = f"{status}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(message)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(message)
        return status
