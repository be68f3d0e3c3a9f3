"""Time the stages of a run: wall time, CPU time and peak memory of each, for summaries and benchmarks."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageTime", "Stages", "ignore_interrupt", "peak_rss_mb", "process_pool",
           "progress_bar", "release_free_memory"]


class _NoBar:
    """What ``progress_bar`` returns when no bar is shown: iterates, counts nothing."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self._iterable = iterable if iterable is not None else ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix(self, **values: Any) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool, **options: Any) -> Any:
    """A tqdm bar on stderr with counts and rates when ``enabled``, else a do-nothing stand-in.

    tqdm (~60 ms of imports) is loaded only when a bar is shown.
    """
    if not enabled:
        return _NoBar(iterable)
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **options)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's VmHWM restarts at exec; ru_maxrss would also count the pages a child
    shared with its parent before exec, inflating a benchmark child's figure.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class StageTime:
    name: str
    wall: float
    cpu: float
    peak_rss_mb: float


@dataclass
class Stages:
    """Times each stage and drives the progress bar."""

    progress: bool = False
    times: list[StageTime] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(f"cxrvqa: {name}…", file=sys.stderr)
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        release_free_memory()
        self.times.append(StageTime(name, time.perf_counter() - wall,
                                    time.process_time() - cpu, peak_rss_mb()))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere nothing).

    A stage frees large tables in pieces; glibc keeps the freed pages, so the next stage's
    tables would come on top of them. At full size from scene_graph.zip, trimming between
    stages lowers the build's peak from 3.45 GB to 2.7 GB (bench/RESULTS.md).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@contextmanager
def process_pool(workers: int, **options: Any) -> Iterator[ProcessPoolExecutor]:
    """A ProcessPoolExecutor (``options`` as its own) that drops the tasks not yet started when
    the block is left, e.g. by an error or Ctrl-C: its workers ignore Ctrl-C (``ignore_interrupt``),
    so a plain ``with`` would first run the whole queue to its end."""
    pool = ProcessPoolExecutor(workers, **options)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ignore_interrupt() -> None:
    """Make a pool's worker process ignore Ctrl-C (the initializer of every process pool).

    A terminal's Ctrl-C reaches every process of the group. The parent stops the pool and
    reports "interrupted" once; a worker that raised KeyboardInterrupt too printed its own
    traceback (from inside multiprocessing when it was waiting for a task) and died.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
