"""build/jsonio: decode_json's bounds are per call, whatever other threads do."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from cxrvqa.build.jsonio import MAX_DEPTH, JSONLimitError, decode_json


def test_a_decode_leaves_the_interpreter_wide_recursion_limit_alone(monkeypatch) -> None:
    # Lowering it for every call made other threads' deep calls fail while a decode ran.
    monkeypatch.setattr(sys, "setrecursionlimit", lambda limit: pytest.fail("limit changed"))
    assert decode_json(b'{"a": [[1, 2], {"b": [3]}]}') == {"a": [[1, 2], {"b": [3]}]}
    with pytest.raises(JSONLimitError):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


@pytest.fixture
def raised_limit():
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    yield
    sys.setrecursionlimit(previous)


def test_concurrent_decodes_under_a_raised_limit_restore_it(raised_limit) -> None:
    # A host that raised the limit has it lowered for each decode on 3.11 (see the last
    # test); threads that interleaved those steps used to leave a lowered limit behind for good.
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


def test_far_too_deep_nesting_under_a_raised_limit_is_still_one_error() -> None:
    # Up to Python 3.11 the parser recursed on the C stack as far as the recursion limit let
    # it: under a limit raised to 10**6, 100,000 levels crashed the interpreter (SIGSEGV).
    script = ("import sys; sys.setrecursionlimit(10**6)\n"
              "from cxrvqa.build.jsonio import JSONLimitError, decode_json\n"
              "try:\n    decode_json(b'[' * 100_000 + b']' * 100_000)\n"
              "except JSONLimitError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, f"1:{MAX_DEPTH + 1}: nested deeper than "
                                                 f"{MAX_DEPTH} levels\n")
