"""The one place portalctl reads the time, so tests can pass their own ``now``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
