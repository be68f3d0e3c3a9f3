"""Write output files all or nothing: stage, fsync, journal, rename; finish or clean up after a crash.

POSIX renames one file atomically but never several, so a set of files (``train.json``,
``valid.json``, ``test.json``, ``ans2idx.json``) is committed in four steps:

1. Preflight: the folder is created if needed and must be a writable folder; no target name
   may be a folder. Nothing has been written or replaced when this fails.
2. Stage: every file is written to ``.cxrvqa-<pid>-<random>.<name>.tmp`` in the target folder
   (a pattern no user file has), flushed and fsynced; then the folder is fsynced.
3. Journal: ``.cxrvqa-commit.json`` lists staged -> final names with each SHA-256. It is itself
   staged, fsynced and renamed into place, so it is either absent or complete. Once it exists
   the new set is decided.
4. Rename every staged file onto its name, fsync the folder, remove the journal.

A crash before step 3 leaves the old set plus temporaries; a crash after it leaves a journal.
``settle(folder)`` - run by every command that writes or reads such a folder, and by
``verify`` - renames the staged files a complete journal still lists and removes the journal,
so readers never keep a mixed set; ``remove_stale(folder)`` removes temporaries of processes
that are gone (and, of this process, those no StagedFiles still uses). Placing a journal and
settling one hold an exclusive ``flock`` on the folder, so a settle that read one journal never
removes the next one another process put in its place, and a writer that finds another's
journal not yet settled finishes that commit before placing its own (where ``fcntl`` is
missing, e.g. on Windows, that lock is not taken). A build also stages
``.cxrvqa-manifest.json`` (the SHA-256 of each file it wrote) so that ``cxrvqa verify`` can
name files that do not belong to the same build.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from cxrvqa.errors import DataError

if sys.platform != "win32":
    import fcntl

__all__ = ["JOURNAL", "MANIFEST", "StagedFiles", "check_output_dir", "is_temporary",
           "naming_os_errors", "os_error_message", "read_manifest", "remove_stale", "settle",
           "stage_name", "sync_tree"]

JOURNAL = ".cxrvqa-commit.json"
MANIFEST = ".cxrvqa-manifest.json"
_TEMPORARY = re.compile(r"\.cxrvqa-(\d{1,10})-[0-9a-f]{8}\..+\.tmp")
# Staged names this process still writes or commits: remove_stale leaves them to their owner
# (another StagedFiles of this process, in another thread or a caller's loop).
_IN_USE: set[str] = set()


def stage_name(name: str) -> str:
    """A fresh temporary name for ``name`` in this process."""
    return f".cxrvqa-{os.getpid()}-{secrets.token_hex(4)}.{name}.tmp"


def is_temporary(name: str) -> bool:
    return _TEMPORARY.fullmatch(name) is not None


def os_error_message(exc: OSError, path: Path | str | None = None) -> str:
    """One line for an OS error: the path, then what went wrong ("disk full" for ENOSPC/EDQUOT)."""
    where = path if path is not None else (exc.filename or "cxrvqa")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{where}: disk full or file size limit reached ({exc.strerror})"
    return f"{where}: {exc.strerror or exc}"


# --- preflight --------------------------------------------------------------------------------

def check_output_dir(directory: Path, names: tuple[str, ...] = ()) -> None:
    """Create ``directory`` if needed; fail before any work if the files cannot be written there.

    Raises:
        DataError: the folder is a file or under one, is not writable, or a name is a folder.
    """
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: is a file; expected a folder to write into")
    if directory.is_symlink() and not directory.exists():
        raise DataError(f"{directory}: is a link to nowhere (dangling, or a loop); expected a "
                        f"folder to write into")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"{directory}: cannot create the folder: a part of the path is a "
                        f"file") from None
    except OSError as exc:
        raise DataError(f"{directory}: cannot create the folder: "
                        f"{exc.strerror or exc}") from None
    for name in names:
        if (directory / name).is_dir():
            raise DataError(f"{directory / name}: is a folder; expected a file (or nothing) "
                            f"there")
        _refuse_special(directory / name)
    probe = directory / stage_name("probe")
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{directory}: cannot write here: {exc.strerror or exc}") from None


def _refuse_special(path: Path) -> None:
    """Fail if ``path`` is a device, FIFO or socket: the rename that commits a file would
    replace it (as root, `--out /dev/null` replaced the system's /dev/null with a file)."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return  # absent: it is created
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
        raise DataError(f"{path}: is a device, FIFO or socket, which writing here would "
                        f"replace; expected a file (or nothing) there")


# --- recovery ---------------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _journal_lock(directory: Path) -> Iterator[None]:
    """Hold the folder's journal lock: one process at a time places or settles a journal.

    Without it a reader settling the previous commit could read that journal, let a new build
    put its own journal in place, and then remove the new one as if it were the one it read.
    """
    if sys.platform == "win32":
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without flock: no worse than before the lock
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _read_journal(directory: Path) -> list[dict[str, str]] | None:
    """The entries of a complete journal, or None if it is unreadable or not in its format."""
    try:
        data = json.loads((directory / JOURNAL).read_bytes())
        entries: list[dict[str, str]] = data["files"]
        if all(isinstance(entry, dict) and _plain_name(entry["staged"])
               and is_temporary(entry["staged"]) and _plain_name(entry["final"])
               for entry in entries):
            return entries
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return None


def _plain_name(name: object) -> bool:
    # A journal names files of the folder itself; a number or null would reach the rename as
    # a TypeError, a NUL as a ValueError, ".." a rename onto a folder that no rerun finishes.
    return type(name) is str and name not in ("", ".", "..") and not {"/", "\0"} & set(name)


def settle(directory: Path) -> bool:
    """Finish a commit a crash interrupted in ``directory``; True if there was one.

    A complete journal is rolled forward (the staged files it lists that are still present
    are renamed onto their names). A journal that does not parse is removed: nothing was
    renamed under it, since it is renamed into place only once complete.

    Raises:
        DataError: the commit cannot be finished (e.g. the folder is read-only).
    """
    journal = directory / JOURNAL
    if not journal.is_file():
        return False  # the common case costs one stat and no lock
    try:
        with _journal_lock(directory):
            if not journal.is_file():
                return False  # another process finished it while this one waited
            _roll_forward(directory)
    except OSError as exc:
        raise DataError(f"{journal}: an interrupted cxrvqa commit cannot be finished "
                        f"({exc.strerror or exc}); make the folder writable and rerun") from None
    return True


def _roll_forward(directory: Path) -> None:
    """Rename what the journal lists and remove it; the caller holds the journal lock."""
    for entry in _read_journal(directory) or ():
        try:
            os.replace(directory / entry["staged"], directory / entry["final"])
        except FileNotFoundError:
            pass  # renamed already, by a run that was killed before removing the journal
    _fsync_dir(directory)
    (directory / JOURNAL).unlink(missing_ok=True)  # removed by hand meanwhile: done too
    _fsync_dir(directory)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, and not in use (see _IN_USE): left by an earlier, failed call
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale(directory: Path) -> int:
    """Remove temporaries left in ``directory`` by cxrvqa processes that are gone; the count."""
    if not directory.is_dir():
        return 0
    settle(directory)
    removed = 0
    for entry in os.scandir(directory):
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or _pid_alive(int(match[1])) or entry.name in _IN_USE:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed += 1
    return removed


def sync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (a staged export) before it is renamed."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


# --- staging and committing -------------------------------------------------------------------

@contextmanager
def naming_os_errors(path: Path) -> Iterator[None]:
    """An OS error while writing ``path`` names it: a full disk's ENOSPC carries no file name."""
    try:
        yield
    except OSError as exc:
        raise DataError(os_error_message(exc, path)) from None


class _HashingWriter:
    """A binary file that keeps the SHA-256 of what was written to it; ``path`` is its target."""

    def __init__(self, stream: BinaryIO, path: Path) -> None:
        self.stream = stream
        self.path = path
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        with naming_os_errors(self.path):
            self.stream.write(data)


def _place_journal(directory: Path, entries: list[dict[str, str]]) -> None:
    """Stage the journal and rename it into place under the lock: it is absent or complete."""
    temporary = directory / stage_name(JOURNAL)
    _IN_USE.add(temporary.name)
    try:
        with temporary.open("wb") as stream:
            stream.write(json.dumps({"format": 1, "files": entries}, indent=1).encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        with _journal_lock(directory):
            if (directory / JOURNAL).is_file():
                # Another writer's commit, journaled but not yet settled: finish it first, or
                # replacing its journal would lose its files while it reports success.
                _roll_forward(directory)
            os.replace(temporary, directory / JOURNAL)
    except BaseException:  # a full disk, Ctrl-C: no journal, so the old set stays
        temporary.unlink(missing_ok=True)
        raise
    finally:
        _IN_USE.discard(temporary.name)


class StagedFiles:
    """A set of files staged in one folder and committed together (see the module docstring).

    Use as a context manager: files are added with ``write``/``open``; leaving the block
    normally commits them, leaving it with an exception discards them (or, once the journal
    exists, finishes the commit when it can).
    """

    def __init__(self, directory: Path, names: tuple[str, ...], *, manifest: bool = False) -> None:
        self.directory = directory
        self.manifest = manifest
        check_output_dir(directory, names + ((MANIFEST,) if manifest else ()))
        remove_stale(directory)
        self._staged: dict[str, tuple[str, _HashingWriter]] = {}
        self._journaled = False

    def open(self, name: str) -> _HashingWriter:
        """A new staged file for ``name``, open for binary writes."""
        staged = stage_name(name)
        _IN_USE.add(staged)
        fd = os.open(self.directory / staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        writer = _HashingWriter(os.fdopen(fd, "wb"), self.directory / name)
        self._staged[name] = (staged, writer)
        return writer

    def write(self, name: str, data: bytes) -> None:
        self.open(name).write(data)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                try:
                    self.commit()
                except BaseException:
                    self._abandon()
                    raise
            else:
                self._abandon()
        finally:  # committed, removed or left for the next command: no longer in use here
            _IN_USE.difference_update(staged for staged, _ in self._staged.values())

    def commit(self) -> None:
        for _staged, writer in self._staged.values():
            with naming_os_errors(writer.path):  # buffered bytes meet a full disk here
                writer.stream.flush()
                os.fsync(writer.stream.fileno())
                writer.stream.close()
        with naming_os_errors(self.directory):
            if self.manifest:
                digests = {name: writer.sha256.hexdigest()
                           for name, (_, writer) in self._staged.items()}
                with self.open(MANIFEST).stream as stream:
                    stream.write(json.dumps({"format": 1, "files": digests}, indent=1,
                                            sort_keys=True).encode("ascii") + b"\n")
                    stream.flush()
                    os.fsync(stream.fileno())
            _fsync_dir(self.directory)
            self._write_journal()
        settle(self.directory)

    def _write_journal(self) -> None:
        _place_journal(self.directory, [
            {"staged": staged, "final": name, "sha256": writer.sha256.hexdigest()}
            for name, (staged, writer) in self._staged.items()])
        self._journaled = True
        _fsync_dir(self.directory)

    def _abandon(self) -> None:
        """After a failure: finish a journaled commit if possible, else remove what was staged."""
        for staged, writer in self._staged.values():
            try:
                writer.stream.close()
            except OSError:  # flushing onto a full disk: the file goes anyway
                pass
        if self._journaled:
            try:
                settle(self.directory)
            except (DataError, OSError):
                pass  # the journal stays; the next command finishes the commit
            return
        for staged, _writer in self._staged.values():
            (self.directory / staged).unlink(missing_ok=True)


def read_manifest(directory: Path) -> dict[str, str] | None:
    """{file name: SHA-256} of the last build committed in ``directory``, or None if absent.

    Raises:
        DataError: the manifest exists but is not in its format.
    """
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_bytes())
        files = data["files"]
        if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
            return files
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    raise DataError(f"{path}: not a cxrvqa build manifest; remove it and rebuild")
