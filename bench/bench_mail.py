"""Mail delivery against its floor, and bulk code issue from CSV.

`mail send` of 1,000 queued emails to a local SMTP server over one connection, measured side
by side with the floor: smtplib sending the same 1,000 messages (the same bytes, built from the
same outbox rows) over one connection in a bare loop. Each side runs in its own process against
the same server (in this process), rounds interleaved and alternating which goes first; the
figure is the median ratio with its spread. The ratio times the delivery itself (from the
first connection to the last mark, imports excluded, on both sides); the whole command, start-up
included, is shown beside it, and so is the client's CPU time, which a busy machine disturbs
less than the wall clock."""

from __future__ import annotations

import pickle
import statistics
import sys
import time

from bench.support import PORTALCTL, base_env, fresh_postgres_schema, timed
from bench.support import run as command

EMAILS = 1_000
ROUNDS = 5
CSV_ROWS_POSTGRES = 100_000
FLOOR = """
import pickle, smtplib, sys, time
messages = pickle.load(open(sys.argv[1], "rb"))
started, cpu = time.perf_counter(), time.process_time()
client = smtplib.SMTP("127.0.0.1", int(sys.argv[2]))
for sender, recipient, data in messages:
    client.sendmail(sender, [recipient], data)
client.quit()
print(time.perf_counter() - started, time.process_time() - cpu)
"""
OURS = """
import os, sys, time
from portalctl.core.config import load_settings
from portalctl.core.database import create_engine
from portalctl.domain.mail.delivery import send_due_emails
settings = load_settings()
engine = create_engine(settings.database_url)
started, cpu = time.perf_counter(), time.process_time()
summary = send_due_emails(engine, operator="bench", settings=settings, limit=int(sys.argv[1]))
print(time.perf_counter() - started, time.process_time() - cpu)
assert summary.sent == int(sys.argv[1]), summary
"""


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


def _write_credentialing_file(path, rows: int) -> None:
    with open(path, "w") as handle:
        handle.write("tin,admin_name,admin_email,provider_name\n")
        for index in range(rows):
            handle.write(
                f"{100000000 + index % 40_000},Admin {index},admin{index}@example.org,"
                f"Provider {index}\n"
            )


class _Outbox:
    """The queued emails of one database: the floor's messages, and a reset to queued."""

    def __init__(self, url: str, env: dict[str, str]):
        import sqlalchemy as sa

        from portalctl.core.config import Settings
        from portalctl.core.database import create_engine
        from portalctl.domain.mail.compose import Composer

        self.sa = sa
        self.engine = create_engine(url)
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM outbox ORDER BY id")).all()
        self.secrets = [{"i": row.id, "s": row.secret_ciphertext} for row in rows]
        composer = Composer.from_settings(Settings(env))
        self.messages = []
        for row in rows:
            message = composer.compose(row)
            self.messages.append((message.envelope_from, message.recipient, message.data))

    def requeue(self) -> None:
        sa = self.sa
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE outbox SET status = 'queued', sent_at = NULL, attempts = 0, "
                    "last_attempt_at = NULL, secret_ciphertext = :s WHERE id = :i"
                ),
                self.secrets,
            )

    def count_sent(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                self.sa.text("SELECT count(*) FROM outbox WHERE status = 'sent'")
            ).scalar_one()


def _side_by_side(label: str, env: dict[str, str], work_dir) -> None:
    from aiosmtpd.controller import Controller

    from bench.support import free_port

    outbox = _Outbox(env["PORTALCTL_DATABASE_URL"], env)
    messages_file = work_dir / f"floor-{label}.pickle"
    messages_file.write_bytes(pickle.dumps(outbox.messages))
    handler = _CountingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    send_env = {**env, "PORTALCTL_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    sides = {
        "floor": [sys.executable, "-c", FLOOR, str(messages_file), str(port)],
        "ours": [sys.executable, "-c", OURS, str(EMAILS)],
        "command": [PORTALCTL, "mail", "send", "--limit", str(EMAILS)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for index in range(ROUNDS):
            order = ["floor", "ours", "command"]
            for name in order if index % 2 == 0 else order[::-1]:
                outbox.requeue()
                started = time.perf_counter()
                result = command(sides[name], send_env)
                took = time.perf_counter() - started
                if name == "command":
                    seconds[name].append(took)
                else:
                    wall, used = (float(value) for value in result.stdout.split())
                    seconds[name].append(wall)
                    cpu[name].append(used)
                if name != "floor":
                    assert outbox.count_sent() == EMAILS, "mail send did not send every email"
    finally:
        controller.stop()
        outbox.engine.dispose()
    floors, ours, whole = seconds["floor"], seconds["ours"], seconds["command"]
    ratios = sorted(o / f for o, f in zip(ours, floors))
    cpu_ratios = sorted(o / f for o, f in zip(cpu["ours"], cpu["floor"]))
    timed(f"{label}: smtplib bare loop, {EMAILS:,} messages (floor)", statistics.median(floors))
    timed(
        f"{label}: mail send's delivery, {EMAILS:,} emails",
        statistics.median(ours),
        f"({EMAILS / statistics.median(ours):,.0f} emails/s)",
    )
    timed(f"{label}: the whole command, start-up included", statistics.median(whole))
    print(
        f"   {label}: delivery / floor, median of {ROUNDS} interleaved rounds: "
        f"{statistics.median(ratios):.2f} (spread {ratios[0]:.2f}-{ratios[-1]:.2f}); "
        f"{handler.connections} connections for {3 * ROUNDS} runs, {handler.received:,} received"
    )
    print(
        f"   {label}: client CPU time / floor's: {statistics.median(cpu_ratios):.2f} "
        f"(spread {cpu_ratios[0]:.2f}-{cpu_ratios[-1]:.2f}; floor "
        f"{statistics.median(cpu['floor']) * 1000:.0f} ms, mail send "
        f"{statistics.median(cpu['ours']) * 1000:.0f} ms)"
    )


def run(context) -> None:
    env = base_env(f"sqlite:///{context.work_dir / 'bench-mail.db'}", context.work_dir)
    command([PORTALCTL, "db", "init"], env)
    path = context.work_dir / "credentialed-1000.csv"
    _write_credentialing_file(path, EMAILS)
    started = time.perf_counter()
    command([PORTALCTL, "codes", "issue", "--csv", str(path)], env)
    timed(f"SQLite: codes issue --csv, {EMAILS:,} rows", time.perf_counter() - started)
    _side_by_side("SQLite", env, context.work_dir)

    if context.postgres_url:
        with fresh_postgres_schema(context.postgres_url) as url:
            env = base_env(url, context.work_dir)
            command([PORTALCTL, "db", "init"], env)
            command([PORTALCTL, "codes", "issue", "--csv", str(path)], env)
            _side_by_side("PostgreSQL", env, context.work_dir)
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
