"""Fetch the PhysioNet files the build reads, and the dataset's images, resumably and verified.

Every file lands at ``<root>/physionet.org/files/<slug>/<version>/<path>``, the layout ``wget -r``
produced for the original scripts, so ``cxrvqa build --physionet-root <root>`` reads it as is.

One run goes through three phases:

1. fetch each project's ``SHA256SUMS.txt`` (kept once complete: published versions never change);
2. plan: hash files already present (complete ones are skipped) and ``HEAD`` the others for their
   sizes, which also surfaces 401/403/404 before any large transfer starts; announce the totals;
3. transfer in parallel into ``<file>.part`` (resumed with HTTP Range after a cut or a previous run),
   verify against the checksum, then rename into place, so a final path always holds a verified file.

Example:
    >>> creds = resolve_credentials("alice")            # doctest: +SKIP
    >>> download_sources(Path("."), base_url=DEFAULT_BASE_URL, credentials=creds)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import http.client
import importlib.metadata
import ipaddress
import netrc
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit

from tqdm import tqdm

from cxrvqa.build.commit import naming_os_errors, settle
from cxrvqa.build.jsonio import decode_json, not_utf8, refuse_device
from cxrvqa.build.layout import (
    CHEST_IMAGENOME,
    LOCAL_PREFIX,
    MIMIC_CXR_JPG,
    MIMIC_IV,
    Project,
    source_files,
)
from cxrvqa.errors import DataError, DownloadError
from cxrvqa.tools.numbers import plain_int

__all__ = [
    "CHEST_IMAGENOME",
    "DEFAULT_BASE_URL",
    "MIMIC_CXR_JPG",
    "MIMIC_IV",
    "SOURCE_FILES",
    "Credentials",
    "DownloadError",
    "DownloadReport",
    "FileOutcome",
    "Project",
    "RemoteFile",
    "RetryPolicy",
    "download_images",
    "download_sources",
    "image_paths_from_dataset",
    "offline_image_plan",
    "offline_plan_summary",
    "resolve_credentials",
]

DEFAULT_BASE_URL = "https://physionet.org/files"
CHECKSUM_FILE = "SHA256SUMS.txt"
NETRC_MACHINE = "physionet.org"
_CHUNK = 1 << 16
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Dataset image paths are p<2 digits>/p<subject>/s<study>/<dicom>.jpg; anything else could
# escape the download root once joined to it.
_IMAGE_PATH = re.compile(r"p\d{2}/p\d+/s\d+/[\w.-]+\.jpg", re.ASCII)

Status = Literal["downloaded", "complete", "planned"]
T = TypeVar("T")



class _Transient(Exception):
    """A failure worth retrying (5xx, cut connection); its message says what happened."""


class _Stopped(Exception):
    """Another transfer failed, so this one stops early (its .part file is kept for resuming)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a project, ``path`` relative to the project root (as in its SHA256SUMS.txt)."""

    project: Project
    path: str

    def __post_init__(self) -> None:
        parts = self.path.split("/")
        if self.path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise DownloadError(f"{self.project}: {self.path!r}: expected a relative path inside the project")

    def __str__(self) -> str:
        return f"{self.project}/{self.path}"

    @property
    def local_path(self) -> str:
        return f"{LOCAL_PREFIX}/{self}"


# What the build reads (build/layout.py names them); compressed files stay compressed because the
# loaders read .gz and zip members directly.
SOURCE_FILES: tuple[RemoteFile, ...] = tuple(RemoteFile(project, path)
                                             for project, path in source_files())


@dataclass(frozen=True)
class Credentials:
    """A PhysioNet username and password; the password never appears in ``repr``."""

    username: str
    password: str = field(repr=False)

    def basic_auth(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures (backoff doubles per attempt)."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0
    """Seconds a connect or a read may wait (a server that never answers is cut off)."""
    overall: float | None = None
    """Seconds the whole run may take (``--timeout``); None for no limit."""
    per_file: float | None = None
    """Seconds one file's transfer may take, all attempts together (``--file-timeout``): a server
    that sends just fast enough to dodge ``timeout`` is cut off too (checked at each 64 KiB
    received). None: no limit."""

    def delay(self, attempt: int) -> float:
        # (ignore: int ** int is Any to mypy, as a negative power would be a float)
        return min(self.backoff * 2**attempt, self.max_backoff)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file; ``path`` is relative to the download root."""

    path: str
    size: int | None
    status: Status


@dataclass(frozen=True)
class DownloadReport:
    """The outcome of one run, file by file, in a stable (sorted) order."""

    files: tuple[FileOutcome, ...]

    def paths(self, status: Status) -> list[str]:
        return [outcome.path for outcome in self.files if outcome.status == status]

    @property
    def total_bytes(self) -> int:
        return sum(outcome.size or 0 for outcome in self.files)

    def summary(self) -> str:
        statuses: tuple[Status, ...] = ("downloaded", "complete", "planned")
        counts = {status: len(self.paths(status)) for status in statuses}
        done = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
        return f"{len(self.files)} files ({_human(self.total_bytes)}): {done or 'nothing to do'}"


@dataclass
class _Job:
    """A planned file: where it goes, what it must hash to, and how big the server says it is."""

    remote: RemoteFile
    dest: Path
    sha256: str
    size: int | None = None
    complete: bool = False

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def remaining(self) -> int:
        """Bytes still to transfer (a resumed .part counts as already there)."""
        if self.complete or self.size is None:
            return 0
        return max(0, self.size - (self.part.stat().st_size if self.part.exists() else 0))


# ---------------------------------------------------------------------------------------------
# Credentials


def resolve_credentials(username: str | None, *, prompt: bool = True) -> Credentials:
    """Find the PhysioNet username and password without ever taking the password from argv.

    The username comes from ``username`` or ``PHYSIONET_USERNAME``; the password from
    ``PHYSIONET_PASSWORD``, else the ``machine physionet.org`` entry of ``~/.netrc`` (used only when
    its login matches the username), else a hidden prompt when ``prompt`` and stdin is a terminal.

    Raises:
        DownloadError: a credential is missing and cannot be prompted for, or ``~/.netrc`` is unreadable.
    """
    username = username or os.environ.get("PHYSIONET_USERNAME") or None
    password = os.environ.get("PHYSIONET_PASSWORD") or None
    if password is None:
        login, password = _netrc_entry()
        if username is None:
            username = login
        elif login is not None and login != username:
            password = None
    interactive = prompt and sys.stdin is not None and sys.stdin.isatty()
    if not username:
        if not interactive:
            raise DownloadError("no PhysioNet username: pass --username or set PHYSIONET_USERNAME")
        username = input("PhysioNet username: ").strip()
    if not password:
        if not interactive:
            raise DownloadError(
                f"no PhysioNet password for {username}: set PHYSIONET_PASSWORD, add "
                f"'machine {NETRC_MACHINE} login {username} password ...' to ~/.netrc, or run in a terminal"
            )
        password = getpass.getpass(f"PhysioNet password for {username}: ")
    if not username or not password:
        raise DownloadError("PhysioNet username and password must not be empty")
    return Credentials(username, password)


def _netrc_entry() -> tuple[str | None, str | None]:
    """Return (login, password) of ``machine physionet.org`` in ~/.netrc, or (None, None)."""
    try:
        entry = netrc.netrc().authenticators(NETRC_MACHINE)
    except FileNotFoundError:
        return None, None
    except OSError as error:
        raise DownloadError(f"{error.filename or '~/.netrc'}: cannot read it: {error.strerror}") from None
    except netrc.NetrcParseError as error:
        # The parser's own message can quote a token of the file, which may be the password.
        raise DownloadError(
            f"{error.filename}: line {error.lineno}: cannot use it (expected 'machine {NETRC_MACHINE} "
            "login NAME password SECRET', in a file only you can read: chmod 600)"
        ) from None
    if entry is None:
        return None, None
    login, _account, password = entry
    return login or None, password or None


# ---------------------------------------------------------------------------------------------
# HTTP


def _user_agent() -> str:
    # PhysioNet honours basic auth only for User-Agents starting with "Wget/".
    try:
        return f"Wget/1.21 (cxrvqa/{importlib.metadata.version('cxrvqa')})"
    except importlib.metadata.PackageNotFoundError:
        return "Wget/1.21 (cxrvqa)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Http:
    """Basic-auth GET/HEAD against one base URL, one keep-alive connection per worker thread."""

    def __init__(self, base_url: str, credentials: Credentials, policy: RetryPolicy) -> None:
        try:  # urlsplit and .port raise on "http://[::1" and "http://host:99999"
            parts = urlsplit(base_url)
            host, port = parts.hostname or "", parts.port
        except ValueError as exc:
            raise DownloadError(f"{base_url}: expected an https:// base URL ({exc})") from None
        if parts.query or parts.fragment or any(c.isspace() or not c.isprintable()
                                                for c in base_url):
            # File paths are appended to it: a query or fragment would swallow them, and a
            # line break would split every message that names a URL.
            raise DownloadError(f"{base_url!r}: expected an https:// base URL without spaces, "
                                f"control characters, a query or a fragment")
        if parts.username is not None or parts.password is not None:
            raise DownloadError(
                "base URL must not contain credentials; use --username and PHYSIONET_PASSWORD"
            )
        if parts.scheme not in ("http", "https") or not host:
            raise DownloadError(f"{base_url}: expected an https:// base URL")
        # PhysioNet honours basic auth over HTTPS only; plain http is for a local test server.
        if parts.scheme == "http" and not _is_loopback(host):
            raise DownloadError(
                f"{base_url}: refusing to send PhysioNet credentials over plain http; use https"
            )
        self.base_url = base_url.rstrip("/")
        self._scheme, self._host, self._port = parts.scheme, host, port
        self._netloc = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._headers = {"User-Agent": _user_agent(), "Authorization": credentials.basic_auth()}
        self.policy = policy
        self.stop = threading.Event()
        self.deadline = (time.monotonic() + policy.overall) if policy.overall else None
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> _Http:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for conn in connections:
            conn.close()

    def url(self, remote: RemoteFile) -> str:
        return f"{self.base_url}/{quote(str(remote))}"

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._scheme == "https":
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.policy.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.policy.timeout)
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                self._open.discard(conn)

    def request(
        self, method: str, remote: RemoteFile, headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        """Send one request; turn error statuses into DownloadError or _Transient (body drained)."""
        conn = self._connection()
        target = f"{self._base_path}/{quote(str(remote))}"
        conn.request(method, target, headers={**self._headers, **(headers or {})})
        response = conn.getresponse()
        if response.status < 300 or response.status == 416:
            return response
        response.read()
        raise self._status_error(response, remote)

    def _status_error(self, response: http.client.HTTPResponse, remote: RemoteFile) -> Exception:
        url, status = self.url(remote), response.status
        if status in _TRANSIENT_STATUS:
            return _Transient(f"HTTP {status} {response.reason}")
        if status == 401:
            return DownloadError(f"{url}: wrong username or password (HTTP 401)")
        if status == 403:
            return DownloadError(
                f"{url}: access denied (HTTP 403): {remote.project} needs a credentialed PhysioNet account "
                f"that signed its data use agreement at {remote.project.sign_dua_url}"
            )
        if status == 404:
            return DownloadError(f"{url}: not found (HTTP 404): the server has no {remote}")
        location = response.getheader("Location")
        where = f" (redirect to {location}, not followed)" if location else ""
        return DownloadError(f"{url}: unexpected HTTP {status} {response.reason}{where}")

    def _check_deadline(self, remote: RemoteFile) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DownloadError(f"{self.url(remote)}: the overall --timeout of "
                                f"{self.policy.overall:g} s is reached; rerun to continue")

    def retrying(self, remote: RemoteFile, action: Callable[[], T]) -> T:
        """Run ``action``, retrying transient failures with exponential backoff on a fresh connection."""
        reason = ""
        for attempt in range(self.policy.attempts):
            self._check_deadline(remote)
            if attempt:
                time.sleep(self.policy.delay(attempt - 1))
            try:
                return action()
            except ssl.SSLCertVerificationError as error:
                self.drop_connection()
                raise DownloadError(
                    f"{self.url(remote)}: TLS certificate of {self._netloc} rejected: {error}"
                ) from None
            except (_Transient, OSError, http.client.HTTPException) as error:
                self.drop_connection()
                reason = str(error) or type(error).__name__
            except BaseException:
                self.drop_connection()
                raise
        raise DownloadError(
            f"{self.url(remote)}: network error talking to {self._netloc}: {reason} "
            f"(gave up after {self.policy.attempts} attempts)"
        )

    def head_size(self, remote: RemoteFile) -> int | None:
        """The file's size from a HEAD request (None when the server does not say)."""

        def head() -> int | None:
            response = self.request("HEAD", remote)
            response.read()
            return plain_int(response.getheader("Content-Length"))

        return self.retrying(remote, head)

    def fetch(self, remote: RemoteFile, part: Path, on_bytes: Callable[[int], None],
              max_size: int | None = None) -> None:
        """Make ``part`` the complete file, continuing from its current length with HTTP Range.

        Never writes past ``max_size`` bytes (the size promised by HEAD) nor past what the
        response's Content-Length promises: a server that sends more is cut off and retried.
        """
        deadline = (time.monotonic() + self.policy.per_file) if self.policy.per_file else None
        self.retrying(remote, lambda: self._fetch_once(remote, part, on_bytes, max_size, deadline))

    def _fetch_once(self, remote: RemoteFile, part: Path, on_bytes: Callable[[int], None],
                    max_size: int | None = None, deadline: float | None = None) -> None:
        offset = part.stat().st_size if part.exists() else 0
        response = self.request("GET", remote, {"Range": f"bytes={offset}-"} if offset else None)
        if response.status == 416:
            # The part already reaches the end; the checksum decides whether it is right.
            response.read()
            return
        content_range = response.getheader("Content-Range", "")
        if response.status == 206 and not content_range.startswith(f"bytes {offset}-"):
            part.unlink()  # the next attempt starts from zero
            raise _Transient(f"server answered Range bytes={offset}- with {content_range!r}")
        if response.status != 206:
            offset = 0
        expected = plain_int(response.getheader("Content-Length"))
        promised = offset + expected if expected is not None else None
        limit = min(size for size in (promised, max_size) if size is not None) if (
            promised is not None or max_size is not None) else None
        received = 0
        # A local failure (a --root that is a file, read-only, full) is a data error at once,
        # not retried as the network's.
        with naming_os_errors(part):
            part.parent.mkdir(parents=True, exist_ok=True)
            out = part.open("r+b" if offset else "wb")
        with out:
            with naming_os_errors(part):
                out.seek(offset)
                out.truncate()
            while chunk := response.read(_CHUNK):
                if self.stop.is_set():
                    raise _Stopped
                self._check_deadline(remote)
                if deadline is not None and time.monotonic() > deadline:
                    raise DownloadError(
                        f"{self.url(remote)}: not complete after the per-file limit of "
                        f"{self.policy.per_file:g} s ({offset + received} bytes so far, kept "
                        f"in {part.name}); rerun to continue")
                if limit is not None and offset + received + len(chunk) > limit:
                    raise _Transient(f"the server sent more than the {limit} bytes promised")
                with naming_os_errors(part):
                    out.write(chunk)
                received += len(chunk)
                on_bytes(len(chunk))
        if expected is not None and received < expected:
            end = offset + expected
            raise _Transient(f"connection closed after {offset + received} of {end} bytes")


# ---------------------------------------------------------------------------------------------
# Checksums, planning, transfers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _parse_checksums(path: Path, source: str | None = None) -> dict[str, str]:
    """Read ``<sha256> <path>`` lines (sha256sum's ``  `` and `` *`` separators are accepted too).

    ``source`` names the file in errors instead of ``path``: the URL when ``path`` is the
    ``.part`` a failure removes, which the user could neither open nor fix.
    """
    source = source or str(path)
    sums: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{source}:{not_utf8(error.object, error.start)}: not a checksum "
                            f"list; removed") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if not _SHA256.fullmatch(digest.lower()) or not name:
            path.unlink(missing_ok=True)  # never cached: the next run fetches it again
            html = line.lstrip().startswith("<")
            page = " but an HTML page, perhaps a login or error page" if html else ""
            raise DownloadError(f"{source}: line {number}: expected '<sha256> <relative path>' "
                                f"(not a checksum list{page}; removed)")
        sums[name] = digest.lower()
    return sums


_CHECKSUMS_MAX = 16 << 20  # a project's SHA256SUMS.txt is a few hundred KB


def _load_checksums(root: Path, http: _Http, project: Project) -> dict[str, str]:
    """The project's checksums; the file is kept only once it parses (an HTML error page
    served in its place would otherwise poison every later run)."""
    remote = RemoteFile(project, CHECKSUM_FILE)
    dest = root / remote.local_path
    if dest.exists():
        try:
            return _parse_checksums(dest)
        except DownloadError:
            _stderr(f"cxrvqa: {dest}: not a checksum list; fetching it again")
    part = dest.with_name(dest.name + ".part")
    with naming_os_errors(part):
        part.unlink(missing_ok=True)  # a checksum list is small: always fetched whole
    http.fetch(remote, part, lambda _n: None, max_size=_CHECKSUMS_MAX)
    # Removes the part and raises, naming the URL, when it does not parse.
    sums = _parse_checksums(part, f"{http.url(remote)} (as the server sent it)")
    with naming_os_errors(dest):
        os.replace(part, dest)
    return sums


def _plan(
    root: Path, http: _Http, files: Sequence[RemoteFile], workers: int, progress: bool
) -> list[_Job]:
    """Match each file to its checksum, hash what is present and HEAD what is not."""
    projects = dict.fromkeys(remote.project for remote in files)
    sums = {project: _load_checksums(root, http, project) for project in projects}
    jobs = []
    for remote in files:
        digest = sums[remote.project].get(remote.path)
        if digest is None:
            sums_path = root / RemoteFile(remote.project, CHECKSUM_FILE).local_path
            raise DownloadError(f"{sums_path}: no checksum listed for {remote.path}")
        jobs.append(_Job(remote, root / remote.local_path, digest))

    def inspect(job: _Job) -> None:
        if job.dest.exists() and _sha256(job.dest) == job.sha256:
            job.complete, job.size = True, job.dest.stat().st_size
        else:
            job.size = http.head_size(job.remote)

    with tqdm(total=len(jobs), unit="file", desc="checking", disable=not progress, file=sys.stderr) as bar:
        _parallel(http, jobs, inspect, workers, lambda: bar.update(1))
    return jobs


def _transfer(http: _Http, job: _Job, on_bytes: Callable[[int], None]) -> None:
    """Fetch ``job`` into place; a checksum mismatch discards the data and fetches once more from zero."""
    for _attempt in range(2):
        http.fetch(job.remote, job.part, on_bytes, max_size=job.size)
        actual = _sha256(job.part)
        if actual == job.sha256:
            os.replace(job.part, job.dest)
            return
        job.part.unlink()
    raise DownloadError(
        f"{http.url(job.remote)}: checksum mismatch twice (got sha256 {actual}, "
        f"{job.remote.project}/{CHECKSUM_FILE} lists {job.sha256})"
    )


def _parallel(
    http: _Http, items: Sequence[T], action: Callable[[T], None], workers: int, done: Callable[[], object]
) -> None:
    """Run ``action`` on every item with at most ``workers`` threads; the first failure stops the rest."""

    def run(item: T) -> None:
        action(item)
        done()

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="cxrvqa-download")
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(run, item) for item in items]
        finished, _pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in finished:
            if (error := future.exception()) is not None:
                raise error
    finally:
        # Reached with work still running only on failure or interrupt: stop the running transfers
        # between chunks (their .part files stay for the next run) and drop the queued ones.
        if not all(future.done() for future in futures):
            http.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _announce(label: str, jobs: Sequence[_Job], log: Callable[[str], None]) -> None:
    todo = [job for job in jobs if not job.complete]
    total = sum(job.size or 0 for job in jobs)
    unknown = " (some sizes unknown)" if any(job.size is None for job in jobs) else ""
    log(
        f"{label}: {len(jobs)} files, {_human(total)}{unknown}; {len(jobs) - len(todo)} already complete, "
        f"{len(todo)} to fetch ({_human(sum(job.remaining for job in todo))})"
    )


def _run(
    root: Path,
    files: Sequence[RemoteFile],
    *,
    label: str,
    base_url: str,
    credentials: Credentials,
    workers: int,
    progress: bool,
    dry_run: bool,
    retry: RetryPolicy,
    log: Callable[[str], None],
) -> DownloadReport:
    with _Http(base_url, credentials, retry) as http:
        jobs = _plan(Path(root), http, files, workers, progress)
        _announce(label, jobs, log)
        todo = [job for job in jobs if not job.complete]
        if todo and not dry_run:
            _transfer_all(http, todo, label, workers, progress)
    return _report(jobs, "planned" if dry_run else "downloaded")


def _transfer_all(http: _Http, todo: Sequence[_Job], label: str, workers: int, progress: bool) -> None:
    lock = threading.Lock()
    with tqdm(
        total=sum(job.remaining for job in todo),
        unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress, file=sys.stderr,
    ) as bar:

        def on_bytes(count: int) -> None:
            with lock:
                bar.update(count)

        _parallel(http, todo, lambda job: _transfer(http, job, on_bytes), workers, lambda: None)


def _report(jobs: Sequence[_Job], fetched: Status) -> DownloadReport:
    outcomes = (
        FileOutcome(job.remote.local_path, job.size, "complete" if job.complete else fetched) for job in jobs
    )
    return DownloadReport(tuple(sorted(outcomes, key=lambda outcome: outcome.path)))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Public entry points


def download_sources(
    root: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    credentials: Credentials,
    workers: int = 4,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    log: Callable[[str], None] = _stderr,
) -> DownloadReport:
    """Fetch exactly the PhysioNet files ``cxrvqa build`` reads (``SOURCE_FILES``) under ``root``.

    Args:
        root: the download root; files land in ``root/physionet.org/files/...``.
        base_url: where ``<slug>/<version>/<path>`` is served (a mirror or a local test server).
        credentials: from :func:`resolve_credentials`.
        workers: the most transfers (and HEAD or hashing jobs) running at once.
        progress: show tqdm bars (bytes and rate) on stderr.
        retry: attempts, backoff and socket timeout for transient failures.
        log: receives the one-line announcement of counts and sizes before transfers start.

    Returns:
        A report listing each file as ``downloaded`` or ``complete`` (already there and verified).

    Raises:
        DownloadError: 401, 403 (naming the project's sign-dua URL), 404, network or checksum failure.
    """
    return _run(
        root, SOURCE_FILES, label="sources", base_url=base_url, credentials=credentials, workers=workers,
        progress=progress, dry_run=False, retry=retry, log=log,
    )


def download_images(
    root: Path,
    image_paths: Iterable[str],
    *,
    base_url: str = DEFAULT_BASE_URL,
    credentials: Credentials,
    workers: int = 4,
    dry_run: bool = False,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    log: Callable[[str], None] = _stderr,
) -> DownloadReport:
    """Fetch MIMIC-CXR-JPG images (paths relative to ``mimic-cxr-jpg/2.0.0``, e.g. ``files/p10/...jpg``).

    Paths are deduplicated and sorted; the count and total size are announced through ``log`` before
    any transfer. With ``dry_run`` nothing is transferred: the report lists every file as ``planned``
    (or ``complete``), sizes included. Otherwise as :func:`download_sources`.
    """
    files = [RemoteFile(MIMIC_CXR_JPG, path) for path in sorted(set(image_paths))]
    return _run(
        root, files, label="images", base_url=base_url, credentials=credentials, workers=workers,
        progress=progress, dry_run=dry_run, retry=retry, log=log,
    )


def image_paths_from_dataset(dataset_dir: Path, splits: Sequence[str]) -> list[str]:
    """The JPGs a built dataset references, as ``files/<image_path>``, deduplicated and sorted.

    Reads ``<dataset_dir>/<split>.json`` (the output of ``cxrvqa build``) for each split.

    Raises:
        DataError: a split file is missing or malformed, or a record lacks a valid ``image_path``.
    """
    paths: set[str] = set()
    settle(Path(dataset_dir))  # a commit a crash interrupted is finished: never a mixed set
    for split in splits:
        source = Path(dataset_dir) / f"{split}.json"
        refuse_device(source)
        try:
            records = decode_json(source.read_bytes())
        except FileNotFoundError:
            raise DataError(f"{source}: not found; run `cxrvqa build` first") from None
        except UnicodeDecodeError as error:
            raise DataError(f"{source}:{not_utf8(error.object, error.start)}") from None
        except (OSError, ValueError) as error:  # ValueError: not JSON, or too deep
            raise DataError(f"{source}: cannot read it as JSON: {error}") from None
        if not isinstance(records, list):
            raise DataError(f"{source}: expected a JSON list of records")
        for number, record in enumerate(records):
            image_path = record.get("image_path") if isinstance(record, dict) else None
            if not isinstance(image_path, str) or not _IMAGE_PATH.fullmatch(image_path):
                raise DataError(
                    f"{source}: record {number}: expected image_path 'pNN/p<subject>/s<study>/<dicom_id>.jpg'"
                )
            paths.add(f"files/{image_path}")
    return sorted(paths)


def offline_image_plan(root: Path, image_paths: Iterable[str]) -> DownloadReport:
    """What ``download_images`` would fetch, without the network or credentials.

    Each image (a path relative to ``mimic-cxr-jpg/2.0.0``) is ``planned``, with its size
    when it is already on disk under ``root`` (unverified) and ``None`` otherwise.
    """
    outcomes = []
    for path in sorted(set(image_paths)):
        local = RemoteFile(MIMIC_CXR_JPG, path).local_path
        on_disk = Path(root) / local
        outcomes.append(FileOutcome(local, on_disk.stat().st_size if on_disk.is_file() else None,
                                    "planned"))
    return DownloadReport(tuple(outcomes))


def offline_plan_summary(report: DownloadReport) -> str:
    """One line for ``download-images --dry-run``: the count and the sizes known offline."""
    present = [outcome for outcome in report.files if outcome.size is not None]
    line = f"{len(report.files)} images"
    if len(present) == len(report.files):
        return f"{line}, {_human(report.total_bytes)}, all already on disk"
    line += f"; {len(present)} already on disk ({_human(report.total_bytes)})"
    return (f"{line}; the sizes of the other {len(report.files) - len(present)} are unknown "
            f"offline (a real run announces its total before fetching)")

