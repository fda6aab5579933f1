"""The batch forms of a rep's changes: ``accounts disable|enable|unlock --csv`` and ``tins link
--csv``: the single commands' rules, checked whole, applied by a fixed set of statements."""

from __future__ import annotations

import sqlalchemy as sa
from consolidation_support import dump_tables, make_account


def statements_during(backend, work) -> int:
    count = 0

    def counted(*_args, **_kwargs) -> None:
        nonlocal count
        count += 1

    sa.event.listen(backend.engine, "before_cursor_execute", counted)
    try:
        work()
    finally:
        sa.event.remove(backend.engine, "before_cursor_execute", counted)
    return count


def test_disable_csv_changes_every_account_in_one_go_with_an_audit_record_each(
    cli, backend, tmp_path
):
    for n in range(30):
        make_account(backend, f"user{n}")
    path = tmp_path / "leavers.csv"
    path.write_text("username,reason\n" + "".join(f"USER{n},left\n" for n in range(30)))
    result = cli("accounts", "disable", "--yes", "--csv", str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {"file": str(path), "action": "disable", "changed": 30, "invalid": 0}
    assert backend.scalar("SELECT COUNT(*) FROM accounts WHERE status = 'disabled'") == 30
    audits = backend.rows("SELECT account, details FROM audit_log WHERE action = 'account.disable'")
    assert len(audits) == 30 and "left" in str(audits[0]["details"])
    assert "active" in str(audits[0]["details"])  # the status before


def test_a_batch_costs_the_same_statements_whatever_its_size(backend, tmp_path):
    from portalctl.domain.batch_changes import change_statuses_from_csv, read_batch_file

    for n in range(60):
        make_account(backend, f"user{n}")
    counts = []
    for size, start in ((5, 0), (50, 5)):
        path = tmp_path / f"f{size}.csv"
        path.write_text("username\n" + "".join(f"user{n}\n" for n in range(start, start + size)))

        def work(path=path) -> None:
            with backend.engine.begin() as connection:
                change_statuses_from_csv(
                    connection,
                    read_batch_file(path, _options(reason="batch"), link=False),
                    operator="ops",
                    action="disable",
                    options=_options(reason="batch"),
                )

        counts.append(statements_during(backend, work))
    assert counts[0] == counts[1]


def _options(**values):
    from portalctl.domain.batch_changes import BatchOptions

    return BatchOptions(**values)


def test_a_bad_row_writes_nothing_and_skip_invalid_applies_the_rest(cli, backend, tmp_path):
    make_account(backend, "ann")
    make_account(backend, "bob")
    make_account(backend, "cal", status="disabled")
    path = tmp_path / "f.csv"
    path.write_text("username\nann\nnobody\ncal\nbob\nann\n")
    before = dump_tables(backend)
    refused = cli("accounts", "disable", "--yes", "--csv", str(path), "--reason", "audit")
    assert refused.exit_code == 5
    assert refused.stderr.startswith(f"portalctl: {path}: 3 invalid rows, nothing was written")
    assert dump_tables(backend) == before
    assert (
        cli("accounts", "disable", "--yes", "--csv", str(path)).exit_code == 5
    )  # no reason at all
    partial = cli(
        "accounts",
        "disable",
        "--yes",
        "--csv",
        str(path),
        "--reason",
        "audit",
        "--skip-invalid",
        "-f",
        "json",
    )
    assert partial.exit_code == 7
    assert (partial.json()["changed"], partial.json()["invalid"]) == (2, 3)
    statuses = {
        r["username"]: r["status"] for r in backend.rows("SELECT username, status FROM accounts")
    }
    assert statuses == {"ann": "disabled", "bob": "disabled", "cal": "disabled"}


def test_tins_link_csv_links_by_hand_with_the_single_links_rules(cli, backend, tmp_path):
    make_account(backend, "ann", "061137531")
    make_account(backend, "bob")
    make_account(backend, "gone", status="disabled")
    path = tmp_path / "links.csv"
    path.write_text(
        "username,tin,role,reason\nbob,061137531,security_admin,office manager\n"
        "ann,061137531,,dup\ngone,061137531,,x\nbob,999999999,,x\n"
    )
    refused = cli("tins", "link", "--csv", str(path))
    assert refused.exit_code == 5
    assert "already holds TIN *****7531" in refused.stderr or "3 invalid rows" in refused.stderr
    result = cli("tins", "link", "--csv", str(path), "--skip-invalid", "-f", "json")
    assert result.exit_code == 7 and result.json()["changed"] == 1
    links = backend.rows(
        "SELECT a.username, t.tin, t.role FROM account_tins t "
        "JOIN accounts a ON a.id = t.account_id ORDER BY 1"
    )
    assert [(r["username"], r["role"]) for r in links] == [
        ("ann", "user"),
        ("bob", "security_admin"),
    ]
    audit = backend.rows("SELECT details FROM audit_log WHERE action = 'tin.link'")
    assert len(audit) == 1 and "office manager" in str(audit[0]["details"])
    assert "061137531" not in refused.stderr + result.stderr
