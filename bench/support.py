"""Helpers shared by the bench modules: timing commands, and a throw-away PostgreSQL schema."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

PORTALCTL = str(Path(sys.executable).parent / "portalctl")


def run(
    args: list[str], env: dict[str, str], *, check: bool = True, stdin=None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, stdin=stdin
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def median_seconds(args: list[str], env: dict[str, str], *, runs: int = 7) -> float:
    """Median wall time of a whole command, after one warm-up run."""
    run(args, env, check=False)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(args, env, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(label: str, seconds: float, extra: str = "") -> None:
    print(f"   {label:<58} {seconds * 1000:9.0f} ms {extra}")


@contextmanager
def fresh_postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        base_url.replace("postgresql://", "postgresql+psycopg://", 1)
        if base_url.startswith("postgresql://")
        else base_url
    )
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = engine.url.render_as_string(hide_password=False)
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote('-csearch_path=' + schema)}"
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def base_env(database_url: str, work_dir: Path) -> dict[str, str]:
    return {
        "PORTALCTL_DATABASE_URL": database_url,
        "PORTALCTL_OPERATOR": "bench",
        "PORTALCTL_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "PORTALCTL_MAIL_DIR": str(work_dir / "mail"),
    }


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
