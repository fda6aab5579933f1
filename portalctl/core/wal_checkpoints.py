"""SQLite: copying the write-ahead log back into the database file on a thread of its own while
a bulk run commits transaction after transaction.

In WAL mode a commit that crosses ``wal_autocheckpoint`` copies the log into the database and
syncs both, and the run waits for it. SQLite's documentation suggests turning the automatic checkpoint off and checkpointing from another thread instead. A
PASSIVE checkpoint never blocks the writer, but the log only starts again from its beginning
when a write transaction begins with every frame already copied, which back-to-back chunks never
allow; so once the log passes ``restart_frames`` the writer finishes the (by then small) copy
itself between two transactions, and the log restarts. Durability is that of
``synchronous = NORMAL``: every checkpoint syncs the log before copying and the database after.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from portalctl.core.database import driver_connection

# ~100 MB of 4 KB pages: a longer log makes every page read search a longer WAL index, which
# costs more than the checkpoints it saves.
RESTART_FRAMES = 25_000


@contextmanager
def checkpoints_in_background(
    connection: Connection, *, restart_frames: int = RESTART_FRAMES, interval: float = 0.02
) -> Iterator[Callable[[], None]]:
    """For the block, checkpoint ``connection``'s SQLite database from a background thread; yields
    the function to call between two of the block's transactions. Elsewhere (PostgreSQL, an
    in-memory database) it does nothing. Must be entered and left outside a transaction."""
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield _nothing
        return
    driver = driver_connection(connection)
    path = driver.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        yield _nothing
        return
    automatic = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    driver.execute("PRAGMA wal_autocheckpoint = 0")
    checkpointer = _Checkpointer(path, interval)
    checkpointer.start()

    def between_transactions() -> None:
        if checkpointer.failed:
            # The thread could not checkpoint: the writer's own automatic checkpoints take over.
            driver.execute(f"PRAGMA wal_autocheckpoint = {int(automatic)}")
        elif checkpointer.log_frames >= restart_frames:
            _checkpoint_all(driver)
            checkpointer.log_frames = 0

    try:
        yield between_transactions
    finally:
        checkpointer.stop()
        driver.execute(f"PRAGMA wal_autocheckpoint = {int(automatic)}")


def _nothing() -> None:
    return None


def _checkpoint_all(driver: sqlite3.Connection) -> None:
    """Copy what is left of the log. A PASSIVE checkpoint answers busy instead of waiting while
    the background one holds the checkpoint lock, so ask again (for up to a second); a reader
    still on an older snapshot keeps frames from being copied, and then the log simply does not
    restart this time."""
    for _ in range(200):
        busy, _log_frames, _copied = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy:
            return
        time.sleep(0.005)


class _Checkpointer(threading.Thread):
    """PASSIVE checkpoints every ``interval`` seconds on a connection of its own."""

    def __init__(self, path: str, interval: float) -> None:
        super().__init__(name="portalctl-wal-checkpoints", daemon=True)
        self.path, self.interval = path, interval
        self.log_frames = 0
        self.failed = False
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            database = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error:
            self.failed = True
            return
        try:
            database.execute("PRAGMA synchronous = NORMAL")
            while not self._stopping.wait(self.interval):
                _busy, log_frames, _copied = database.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                self.log_frames = max(log_frames, 0)
        except Exception:  # whatever stops it, the writer's automatic checkpoints take over
            self.failed = True
        finally:
            database.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()
