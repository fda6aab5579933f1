"""Run every bench module (or those named on the command line) and print their figures."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bench


@dataclass
class BenchContext:
    """Where benchmarks may write, and which PostgreSQL they may use (None: skip those figures)."""

    work_dir: Path
    postgres_url: str | None


def postgres_url() -> str | None:
    url = os.environ.get("PORTALCTL_BENCH_DATABASE_URL") or os.environ.get(
        "PORTALCTL_TEST_DATABASE_URL"
    )
    if url:
        return url
    try:
        import psycopg

        for user in ("root", "postgres"):
            try:
                psycopg.connect(
                    f"host=127.0.0.1 port=5432 user={user} dbname=test", connect_timeout=2
                ).close()
                return f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
            except psycopg.Error:
                continue
    except ImportError:
        pass
    return None


def compile_bytecode() -> None:
    """Every figure is of portalctl as installed from a wheel, whose modules come compiled: an
    editable checkout under PYTHONDONTWRITEBYTECODE would compile them on every run instead."""
    import compileall

    import portalctl

    compileall.compile_dir(Path(portalctl.__file__).parent, quiet=1)


def main(names: list[str]) -> None:
    compile_bytecode()
    modules = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    chosen = [m for m in modules if not names or any(n in m for n in names)]
    with tempfile.TemporaryDirectory(prefix="portalctl-bench-") as tmp:
        context = BenchContext(Path(tmp), postgres_url())
        print(
            f"PostgreSQL for benchmarks: {context.postgres_url or 'none (those figures skipped)'}"
        )
        for name in chosen:
            print(f"\n== {name}")
            started = time.perf_counter()
            importlib.import_module(f"bench.{name}").run(context)
            print(f"   ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
