"""The one exception the oracle raises where the published builder would crash."""

from __future__ import annotations

__all__ = ["OracleError"]


class OracleError(Exception):
    """The inputs break an invariant the published builder relies on (it would stop here)."""
