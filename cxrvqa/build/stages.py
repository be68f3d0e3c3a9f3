"""Time the stages of a run: wall time, CPU time and peak memory of each, for summaries and benchmarks."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm import tqdm

__all__ = ["StageTime", "Stages", "peak_rss_mb"]


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
            tqdm.write(f"cxrvqa: {name}…")
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.times.append(StageTime(name, time.perf_counter() - wall,
                                    time.process_time() - cpu, peak_rss_mb()))
