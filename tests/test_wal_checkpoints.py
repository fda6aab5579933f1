"""The background WAL checkpointer of long SQLite runs, on a real database file."""

from __future__ import annotations

import os

from portalctl.core.database import create_engine
from portalctl.core.wal_checkpoints import checkpoints_in_background

TRANSACTIONS, ROWS_EACH = 400, 20  # each row ~4 KB: ~20 pages a transaction, ~32 MB in all
INSERT = (
    "INSERT INTO t (x) SELECT hex(randomblob(2000)) FROM (WITH RECURSIVE n(i) AS "
    f"(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS_EACH}) SELECT i FROM n)"
)


def test_checkpoints_keep_the_log_small_and_every_commit(tmp_path):
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x TEXT)")
    largest_log = 0
    with engine.connect() as connection:
        before = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        connection.rollback()
        with checkpoints_in_background(
            connection, restart_frames=100, interval=0.002
        ) as between_transactions:
            for _ in range(TRANSACTIONS):
                with connection.begin():
                    connection.exec_driver_sql(INSERT)
                between_transactions()
                largest_log = max(largest_log, os.path.getsize(f"{path}-wal"))
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == before
        connection.rollback()
    engine.dispose()
    # Without checkpoints the log would hold every page written (~32 MB); the restarts keep it
    # near restart_frames, plus what the background thread has not seen yet on a busy machine.
    assert largest_log < 12 * 1024 * 1024
    reopened = create_engine(f"sqlite:///{path}")
    with reopened.connect() as connection:
        assert (
            connection.exec_driver_sql("SELECT COUNT(*) FROM t").scalar()
            == TRANSACTIONS * ROWS_EACH
        )
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    reopened.dispose()


def test_nothing_is_done_inside_a_transaction_or_in_memory(tmp_path):
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        with checkpoints_in_background(connection) as between_transactions:
            between_transactions()
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()
