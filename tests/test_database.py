"""The transaction helpers: conflicts PostgreSQL resolves by aborting one side are retried,
and a refusal that recorded something keeps it."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from portalctl.core.database import retrying_conflicts, transaction_on
from portalctl.core.errors import RecordedRefusal, Refused


def _two_rows(backend) -> None:
    with backend.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (id INTEGER PRIMARY KEY, v INTEGER)")
        connection.exec_driver_sql("INSERT INTO scratch VALUES (1, 0), (2, 0)")


def test_a_deadlock_victim_is_run_again_and_nothing_is_done_twice(backend):
    if backend.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: it cannot deadlock")
    _two_rows(backend)
    other = backend.engine.connect()
    other.execute(sa.text("SET deadlock_timeout = '5s'"))  # so this side is never the victim
    other.execute(sa.text("UPDATE scratch SET v = v + 10 WHERE id = 2"))
    attempts = []

    def crossing() -> None:
        other.execute(sa.text("UPDATE scratch SET v = v + 10 WHERE id = 1"))
        other.commit()

    def work() -> str:
        attempts.append(len(attempts) + 1)
        connection.execute(sa.text("SET LOCAL deadlock_timeout = '100ms'"))
        connection.execute(sa.text("UPDATE scratch SET v = v + 1 WHERE id = 1"))
        if len(attempts) == 1:
            threading.Thread(target=crossing).start()
            time.sleep(0.5)  # the other side now waits for row 1
        connection.execute(sa.text("UPDATE scratch SET v = v + 1 WHERE id = 2"))
        return "done"

    with backend.engine.connect() as connection:
        assert retrying_conflicts(connection, work, what="test") == "done"
    other.close()
    assert attempts == [1, 2]
    assert backend.rows("SELECT id, v FROM scratch ORDER BY id") == [
        {"id": 1, "v": 11},
        {"id": 2, "v": 11},
    ]


def test_a_recorded_refusal_commits_and_any_other_error_rolls_back(backend):
    _two_rows(backend)
    with backend.engine.connect() as connection:
        with pytest.raises(RecordedRefusal), transaction_on(connection):
            connection.execute(sa.text("UPDATE scratch SET v = 1 WHERE id = 1"))
            raise RecordedRefusal("counted, then refused")
        with pytest.raises(Refused), transaction_on(connection):
            connection.execute(sa.text("UPDATE scratch SET v = 1 WHERE id = 2"))
            raise Refused("refused")
    assert backend.rows("SELECT id, v FROM scratch ORDER BY id") == [
        {"id": 1, "v": 1},
        {"id": 2, "v": 0},
    ]
