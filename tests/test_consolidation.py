"""The consolidation rules of SPEC section 1, through the domain functions, on both backends."""

from __future__ import annotations

import csv

import pytest
import sqlalchemy as sa
from consolidation_support import (
    account,
    dump_tables,
    links_of,
    make_account,
    make_groups,
    write_pairs,
)

from portalctl.core.errors import InvalidInput, NotFound, PartlyApplied, Refused
from portalctl.core.tin import Tin
from portalctl.domain.consolidation import consolidate_one, run_consolidation_file

A, B, C = "061137531", "836576879", "223456781"


def one(backend, primary, secondary, **options):
    options.setdefault("override_reason", "the rules, not the caller, are tested here")
    with backend.begin() as connection:
        return consolidate_one(
            connection, operator="ops-anna", primary=primary, secondary=secondary, **options
        )


def run_file(backend, path, **options):
    """The run's summary; a run that skipped rows (exit 7) carries it on its error."""
    try:
        return run_consolidation_file(backend.engine, path, operator="ops-anna", **options)
    except PartlyApplied as partial:
        assert options.get("skip_invalid"), "rows are only skipped with skip_invalid"
        return partial.record


def report_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_links_move_and_the_higher_role_wins(backend):
    make_account(backend, "john", f"{A}:user", f"{B}:user")
    make_account(backend, "jsmith_old", f"{A}:security_admin", f"{B}:user", f"{C}:user")
    result = one(backend, "john", "jsmith_old")
    assert result["outcome"] == "merged"
    assert {link["tin"].reveal() for link in result["links_moved"]} == {A, B, C}
    assert links_of(backend, "john") == {A: "security_admin", B: "user", C: "user"}
    assert links_of(backend, "jsmith_old") == {}
    assert account(backend, "jsmith_old") == ("merged", "john")


def test_primary_keeps_its_security_admin_role(backend):
    make_account(backend, "john", f"{A}:security_admin")
    make_account(backend, "old", f"{A}:user")
    one(backend, "john", "old")
    assert links_of(backend, "john") == {A: "security_admin"}


def test_self_merge_is_refused(backend):
    make_account(backend, "john", A)
    with pytest.raises(Refused, match="cannot be merged into itself"):
        one(backend, "john", "JOHN")
    assert account(backend, "john") == ("active", None)


def test_unknown_account_is_not_found(backend):
    make_account(backend, "john", A)
    with pytest.raises(NotFound, match="no account nobody"):
        one(backend, "john", "nobody")
    with pytest.raises(NotFound, match="no account ghost"):
        one(backend, "ghost", "john")


@pytest.mark.parametrize("status", ["locked", "disabled"])
def test_inactive_primary_is_refused(backend, status):
    make_account(backend, "john", A, status=status)
    make_account(backend, "old", B)
    with pytest.raises(Refused, match=f"primary john is {status}, not active"):
        one(backend, "john", "old")
    assert links_of(backend, "old") == {B: "user"}


def test_merged_primary_is_refused(backend):
    for name in ("john", "old", "other"):
        make_account(backend, name, A)
    one(backend, "john", "old")
    with pytest.raises(Refused, match="primary old is merged"):
        one(backend, "old", "other")


def test_secondary_merged_into_another_account_is_refused(backend):
    for name in ("john", "old", "other"):
        make_account(backend, name, A)
    one(backend, "john", "old")
    with pytest.raises(Refused, match="already merged into another account"):
        one(backend, "other", "old")
    assert account(backend, "old") == ("merged", "john")


def test_secondary_already_merged_into_this_primary_is_already_merged(backend):
    make_account(backend, "john", A)
    make_account(backend, "old", B)
    one(backend, "john", "old")
    before = dump_tables(backend)
    again = one(backend, "john", "old")
    assert again["outcome"] == "already_merged" and again["links_moved"] == []
    assert dump_tables(backend) == before


def test_tin_the_secondary_does_not_hold_is_refused(backend):
    make_account(backend, "john", A)
    make_account(backend, "old", B)
    with pytest.raises(Refused, match=r"old does not hold TIN \*\*\*\*\*7531"):
        one(backend, "john", "old", tin=Tin.parse(A))
    assert one(backend, "john", "old", tin=Tin.parse(B))["outcome"] == "merged"


def test_accounts_earlier_merged_into_the_secondary_are_repointed(backend):
    for name in ("john", "mid", "oldest"):
        make_account(backend, name, A)
    one(backend, "mid", "oldest")
    one(backend, "john", "mid")
    assert account(backend, "oldest") == ("merged", "john")
    assert account(backend, "mid") == ("merged", "john")


def test_dry_run_of_one_changes_nothing(backend):
    make_account(backend, "john", A)
    make_account(backend, "old", B)
    before = dump_tables(backend)
    result = one(backend, "john", "old", dry_run=True)
    assert result["outcome"] == "would_merge" and result["links_moved"][0]["tin"].reveal() == B
    assert dump_tables(backend) == before


def test_every_merge_has_an_audit_record_naming_the_operator(backend):
    make_account(backend, "john", A)
    make_account(backend, "old", B)
    one(backend, "john", "old", tin=Tin.parse(B))
    audit = backend.rows(
        "SELECT operator, account, target, tin, details FROM audit_log "
        "WHERE action = 'account.consolidate'"
    )
    assert len(audit) == 1
    assert (audit[0]["operator"], audit[0]["account"], audit[0]["target"]) == (
        "ops-anna",
        "john",
        "account:old",
    )
    assert B not in str(audit[0]["details"]) and "*****6879" in str(audit[0]["details"])


def test_chain_ends_at_final_primary(backend, tmp_path):
    for name in ("aaa", "bbb", "ccc", "ddd"):
        make_account(backend, name, A)
    path = write_pairs(tmp_path / "chain.csv", [("ccc", "ddd"), ("bbb", "ccc"), ("aaa", "bbb")])
    summary = run_file(backend, path)
    assert summary["merged"] == 3
    assert [account(backend, name) for name in ("bbb", "ccc", "ddd")] == [("merged", "aaa")] * 3
    assert (
        backend.scalar(
            "SELECT COUNT(*) FROM consolidations c JOIN accounts a "
            "ON a.id = c.primary_id WHERE a.username = 'aaa'"
        )
        == 3
    )


def test_cycle_is_invalid(backend, tmp_path):
    for name in ("aaa", "bbb", "ccc", "xxx", "yyy"):
        make_account(backend, name, A)
    path = write_pairs(
        tmp_path / "cycle.csv", [("aaa", "bbb"), ("bbb", "ccc"), ("ccc", "aaa"), ("xxx", "yyy")]
    )
    with pytest.raises(InvalidInput) as error:
        run_file(backend, path)
    assert (
        f"{path}:2: invalid: the chain of merges from this line runs in a cycle"
        in error.value.details
    )
    assert len(error.value.details) == 3
    summary = run_file(backend, path, skip_invalid=True, report_path=tmp_path / "r.csv")
    assert (summary["merged"], summary["invalid"]) == (1, 3)
    assert account(backend, "aaa") == ("active", None) and account(backend, "yyy") == (
        "merged",
        "xxx",
    )


def test_repeated_secondary_is_invalid(backend, tmp_path):
    for name in ("aaa", "bbb", "ccc"):
        make_account(backend, name, A)
    path = write_pairs(tmp_path / "twice.csv", [("aaa", "ccc"), ("bbb", "CCC")])
    with pytest.raises(
        InvalidInput, match="twice.csv:3: invalid: secondary CCC already appears on line 2"
    ):
        run_file(backend, path)
    assert account(backend, "ccc") == ("active", None)


def test_row_chained_through_a_refused_row_is_refused(backend, tmp_path):
    make_account(backend, "aaa", A, status="locked")
    make_account(backend, "bbb", A)
    make_account(backend, "ccc", A)
    path = write_pairs(tmp_path / "f.csv", [("aaa", "bbb"), ("bbb", "ccc")])
    summary = run_file(backend, path, skip_invalid=True, report_path=tmp_path / "r.csv")
    assert (summary["merged"], summary["refused"]) == (0, 2)
    assert [row["detail"] for row in report_rows(tmp_path / "r.csv")] == [
        "primary aaa is locked, not active",
        "primary aaa is locked, not active (the end of the chain from bbb)",
    ]


def test_row_level_problems_are_invalid_with_their_lines(backend, tmp_path):
    make_account(backend, "aaa", A)
    make_account(backend, "bbb", B)
    path = write_pairs(
        tmp_path / "f.csv",
        [("aaa", "bbb", "12345"), ("aaa", "", ""), ("aaa", "aaa", "")],
        header="primary_username,secondary_username,tin",
    )
    with pytest.raises(InvalidInput) as error:
        run_file(backend, path)
    assert error.value.details == [
        f"{path}:2: invalid: invalid TIN '*2345': use 9 digits, as 123456789, 12-3456789 or "
        "123-45-6789",
        f"{path}:3: invalid: primary_username and secondary_username are required",
        f"{path}:4: refused: an account cannot be merged into itself",
    ]
    assert backend.scalar("SELECT COUNT(*) FROM consolidation_batches") == 0


def test_a_bad_row_in_50000_changes_nothing(backend, tmp_path):
    make_groups(backend, 50_000)
    pairs = [(f"p{i}", f"s{i}") for i in range(1, 50_001)]
    pairs[31_337] = ("p31338", "nobody")
    path = write_pairs(tmp_path / "big.csv", pairs)
    before = dump_tables(backend)
    with pytest.raises(
        InvalidInput,
        match=r"big.csv: 1 of 50000 rows cannot be applied, "
        r"nothing was written; first: .*big.csv:31339: "
        r"refused: no account nobody",
    ):
        run_file(backend, path, chunk_size=5000)
    assert dump_tables(backend) == before


def test_dry_run_report_matches_the_applied_run(backend, tmp_path):
    make_groups(backend, 300)
    make_account(backend, "locked1", A, status="locked")
    pairs = [(f"p{i}", f"s{i}") for i in range(1, 301)] + [("locked1", "p5"), ("s7", "=cmd")]
    path = write_pairs(tmp_path / "f.csv", pairs)
    one(backend, "p3", "s3")
    before = dump_tables(backend)
    planned = run_file(
        backend, path, dry_run=True, skip_invalid=True, report_path=tmp_path / "plan.csv"
    )
    assert dump_tables(backend) == before
    applied = run_file(
        backend, path, skip_invalid=True, chunk_size=64, report_path=tmp_path / "done.csv"
    )
    assert planned == {
        "batch_id": None,
        "rows": 302,
        "merged": 0,
        "already_merged": 1,
        "invalid": 0,
        "refused": 3,
        "dry_run": True,
        "would_merge": 298,
    }
    assert applied["merged"] == 298 and applied["dry_run"] is False
    plan_rows, done_rows = report_rows(tmp_path / "plan.csv"), report_rows(tmp_path / "done.csv")
    for row in plan_rows:
        row["outcome"] = row["outcome"].replace("would_merge", "merged")
    assert plan_rows == done_rows
    assert done_rows[-1] == {
        "line": "303",
        "primary_username": "s7",
        "secondary_username": "'=cmd",
        "outcome": "refused",
        "detail": "no account =cmd",
    }
    assert done_rows[300]["detail"] == "primary locked1 is locked, not active"
    assert (
        done_rows[4]["detail"]
        == "primary locked1 is locked, not active (the end of the chain from p5)"
    )


def test_notify_queues_one_email_per_surviving_account(backend, tmp_path):
    for name in ("aaa", "bbb", "ccc", "xxx", "yyy"):
        make_account(backend, name, A)
    path = write_pairs(tmp_path / "f.csv", [("aaa", "bbb"), ("aaa", "ccc"), ("xxx", "yyy")])
    run_file(backend, path, notify=True, chunk_size=1)
    emails = backend.rows("SELECT kind, recipient, body FROM outbox ORDER BY recipient")
    assert [(e["kind"], e["recipient"]) for e in emails] == [
        ("accounts_consolidated", "aaa@example.org"),
        ("accounts_consolidated", "xxx@example.org"),
    ]
    assert "  - bbb\n  - ccc\n" in emails[0]["body"] and A not in emails[0]["body"]


def test_statements_per_chunk_do_not_grow_with_rows(backend, tmp_path):
    make_groups(backend, 2000)
    counts = []
    for label, rows in (("small", range(1, 11)), ("large", range(11, 2001))):
        path = write_pairs(tmp_path / f"{label}.csv", [(f"p{i}", f"s{i}") for i in rows])
        statements = []

        def count(conn, cursor, statement, *args, _seen=statements):
            _seen.append(statement)

        sa.event.listen(backend.engine, "before_cursor_execute", count)
        try:
            assert run_file(backend, path)["merged"] == len(rows)
        finally:
            sa.event.remove(backend.engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
    assert counts[1] < 60


def test_secondaries_holding_the_same_new_tin_give_it_the_higher_role(backend, tmp_path):
    make_account(backend, "john", f"{A}:user")
    make_account(backend, "old1", f"{B}:user", f"{C}:user")
    make_account(backend, "old2", f"{B}:security_admin", f"{A}:security_admin")
    make_account(backend, "old3", f"{C}:user")
    path = write_pairs(tmp_path / "f.csv", [("john", "old1"), ("john", "old2"), ("john", "old3")])
    assert run_file(backend, path)["merged"] == 3
    assert links_of(backend, "john") == {A: "security_admin", B: "security_admin", C: "user"}
    for name in ("old1", "old2", "old3"):
        assert links_of(backend, name) == {} and account(backend, name) == ("merged", "john")
    assert [
        (r["username"], r["links_moved"])
        for r in backend.rows(
            "SELECT s.username, c.links_moved FROM consolidations c "
            "JOIN accounts s ON s.id = c.secondary_id ORDER BY s.username"
        )
    ] == [("old1", 2), ("old2", 2), ("old3", 1)]


def test_sqlite_run_checks_keys_itself_and_turns_foreign_keys_back_on(backend, tmp_path):
    """A run on SQLite writes with foreign key enforcement off (each chunk checks its
    accounts); afterwards every key is valid and the connection enforces them again."""
    if backend.name != "sqlite":
        pytest.skip("SQLite only")
    make_groups(backend, 300)
    make_account(backend, "mid", A)
    one(backend, "s5", "mid")
    path = write_pairs(tmp_path / "f.csv", [(f"p{i}", f"s{i}") for i in range(1, 301)])
    assert run_file(backend, path, chunk_size=64)["merged"] == 300
    with backend.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    assert account(backend, "mid") == ("merged", "p5")


def test_an_account_gone_since_the_plan_is_refused_by_its_chunk(backend):
    """A merge whose account was deleted after the plan is refused by its chunk's re-check
    ("no account", the not-found rule), records nothing, and the rest of the chunk is applied (SQLite
    writes with foreign keys off; on PostgreSQL they would fail the whole chunk)."""
    from portalctl.core.clock import utc_now
    from portalctl.domain.consolidation.apply import apply_chunk, keys_checked_by_chunks
    from portalctl.domain.consolidation.chunk import Chunk
    from portalctl.domain.consolidation.plan import (
        STAGE,
        create_stage,
        plan_staged,
        stage_pairs,
    )

    make_account(backend, "john", A)
    make_account(backend, "gone")
    make_account(backend, "old", f"{B}:security_admin")
    with backend.engine.connect() as connection:
        with connection.begin():
            create_stage(connection, keep_after_commit=True)
            stage_pairs(connection, [("john", "gone", None), ("john", "old", None)])
            assert plan_staged(connection, source="t").count("would_merge") == 2
        with backend.begin() as other:
            other.execute(sa.text("DELETE FROM accounts WHERE username = 'gone'"))
        primary = backend.rows("SELECT id FROM accounts WHERE username = 'john'")[0]["id"]
        with keys_checked_by_chunks(connection), connection.begin():
            counts = apply_chunk(Chunk(connection, primary, primary, None, "ops-anna", utc_now()))
            outcomes = connection.exec_driver_sql(
                f"SELECT secondary_name, outcome, rule, detail FROM {STAGE} ORDER BY line"
            ).all()
    assert counts == {"merged": 1, "already_merged": 0, "refused": 1}
    assert [tuple(row) for row in outcomes] == [
        ("gone", "refused", "no_secondary", "no account gone"),
        ("old", None, None, None),
    ]
    assert links_of(backend, "john") == {A: "user", B: "security_admin"}
    assert [
        r["username"]
        for r in backend.rows(
            "SELECT a.username FROM consolidations c JOIN accounts a ON a.id = c.secondary_id"
        )
    ] == ["old"]
