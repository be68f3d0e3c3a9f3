"""cxrvqa.build.stages: the process pool every parallel stage uses."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from cxrvqa.build.stages import ignore_interrupt, process_pool


def _nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_leaving_the_pool_early_drops_the_tasks_not_started() -> None:
    # Workers ignore Ctrl-C, so an interrupted `generate --workers N` used to run every queued
    # template to its end before it stopped (a plain `with ProcessPoolExecutor` waits for all).
    futures = []
    with pytest.raises(KeyboardInterrupt):
        with process_pool(1, mp_context=multiprocessing.get_context("fork"),
                          initializer=ignore_interrupt) as pool:
            futures = [pool.submit(_nap, 0.2) for _ in range(20)]
            time.sleep(0.1)  # the first task runs
            raise KeyboardInterrupt
    # The running task and the few already handed to the worker's queue (the executor moves up
    # to workers + 1 ahead, and one may be in transit) finish; the rest are dropped. A plain
    # `with` ran all 20.
    assert sum(future.cancelled() for future in futures) >= 15
