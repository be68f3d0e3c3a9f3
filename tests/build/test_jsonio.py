"""build/jsonio: decode_json's bounds are per call, whatever other threads do."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from cxrvqa.build.jsonio import MAX_DEPTH, JSONLimitError, decode_json


def test_concurrent_decodes_leave_the_recursion_limit_as_it_was() -> None:
    # Each decode lowers the interpreter-wide recursion limit for its call and restores it;
    # threads that interleaved those steps used to leave a lowered limit behind for good.
    limit, interval = sys.getrecursionlimit(), sys.getswitchinterval()
    text = json.dumps([[number, {"ids": [number, number + 1]}] for number in range(3000)])
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def decode_many() -> None:
        start.wait()
        try:
            for _ in range(25):
                assert decode_json(text)[-1][0] == 2999
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    sys.setswitchinterval(1e-6)  # switch threads as often as possible, inside the decodes too
    try:
        threads = [threading.Thread(target=decode_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == [] and sys.getrecursionlimit() == limit


def test_the_documented_depth_is_accepted() -> None:
    deep = "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH  # the integer hook runs at the deepest level
    value = decode_json(deep)
    for _ in range(MAX_DEPTH):
        (value,) = value
    assert value == 1


def test_far_too_deep_nesting_is_one_error_on_every_python() -> None:
    with pytest.raises(JSONLimitError, match=f"^1:{MAX_DEPTH + 1}: nested deeper than"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)
