"""Shared test settings: hypothesis profiles and the ``--update-goldens`` option.

Profiles (environment variable ``HYPOTHESIS_PROFILE``, default ``ci``):
``ci`` is derandomized with about 100 examples, ``dev`` is hypothesis' default
with no deadline, ``nightly`` runs thousands of examples. ``CXRVQA_GENTEST_DEPTH``
overrides the depth of generated programs (tests/strategies.py).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests live in one folder per layer (lang/, build/, tools/, synth/, e2e/); the shared helpers,
# strategies, naive evaluator and the independent oracle stay here, importable from all of them.
sys.path.insert(0, str(Path(__file__).resolve().parent))

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.register_profile("nightly", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite tests/golden/errors/*.err from the current output")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when golden snapshots should be rewritten instead of compared."""
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(autouse=True)
def _close_sqlite_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every sqlite3 connection a test opens when it ends.

    Python 3.13 warns (ResourceWarning) when an unclosed connection is collected, and with
    warnings as errors that fails whichever later test is running at the time.
    """
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def tracked(*args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(connect(*args, **kwargs))  # type: ignore[arg-type]
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", tracked)
    yield
    for connection in opened:
        connection.close()
