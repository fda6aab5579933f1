"""Mail delivery to a local SMTP server over one connection, and bulk code issue from CSV."""

from __future__ import annotations

import socket
import time

from bench.support import PORTALCTL, base_env, fresh_postgres_schema, timed
from bench.support import run as command

EMAILS = 1_000
CSV_ROWS_POSTGRES = 100_000


class _CountingHandler:
    def __init__(self) -> None:
        self.received = 0
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.received += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_credentialing_file(path, rows: int) -> None:
    with open(path, "w") as handle:
        handle.write("tin,admin_name,admin_email,provider_name\n")
        for index in range(rows):
            handle.write(
                f"{100000000 + index % 40_000},Admin {index},admin{index}@example.org,"
                f"Provider {index}\n"
            )


def run(context) -> None:
    from aiosmtpd.controller import Controller

    env = base_env(f"sqlite:///{context.work_dir / 'bench-mail.db'}", context.work_dir)
    command([PORTALCTL, "db", "init"], env)
    path = context.work_dir / "credentialed-1000.csv"
    _write_credentialing_file(path, EMAILS)
    started = time.perf_counter()
    command([PORTALCTL, "codes", "issue", "--csv", str(path)], env)
    timed(f"SQLite: codes issue --csv, {EMAILS:,} rows", time.perf_counter() - started)

    handler = _CountingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        started = time.perf_counter()
        command(
            [PORTALCTL, "mail", "send", "--limit", str(EMAILS)],
            {**env, "PORTALCTL_SMTP_URL": f"smtp://127.0.0.1:{port}"},
        )
        seconds = time.perf_counter() - started
    finally:
        controller.stop()
    timed(
        f"SQLite: mail send, {EMAILS:,} emails to local SMTP",
        seconds,
        f"({handler.received} received over {handler.connections} connection(s), "
        f"{EMAILS / seconds:,.0f} emails/s)",
    )

    if context.postgres_url:
        with fresh_postgres_schema(context.postgres_url) as url:
            env = base_env(url, context.work_dir)
            command([PORTALCTL, "db", "init"], env)
            path = context.work_dir / "credentialed-100k.csv"
            _write_credentialing_file(path, CSV_ROWS_POSTGRES)
            started = time.perf_counter()
            command([PORTALCTL, "codes", "issue", "--csv", str(path)], env)
            seconds = time.perf_counter() - started
            timed(
                f"PostgreSQL: codes issue --csv, {CSV_ROWS_POSTGRES:,} rows",
                seconds,
                f"({CSV_ROWS_POSTGRES / seconds:,.0f} codes/s, emails queued)",
            )
