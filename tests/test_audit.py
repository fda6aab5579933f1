"""The audit log: one record per change naming the operator, filters that combine, masked TINs."""

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from portalctl.core.tin import Tin
from portalctl.domain.audit import AuditFilter, list_audit, record_audit


def test_records_are_filtered_by_operator_action_account_tin_and_time(backend, cli):
    cli("accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy")
    cli("--operator", "rep-2", "accounts", "disable", "--yes", "amy", "--reason", "left")
    cli(
        "accounts",
        "create",
        "-u",
        "bob",
        "-e",
        "bob@example.org",
        "-n",
        "Bob",
        "--tin",
        "836576879",
    )

    def actions(*args):
        result = cli("audit", "-f", "json", *args)
        assert result.exit_code == 0, result.stderr
        return [(r["operator"], r["action"], r["target"]) for r in result.json()]

    assert actions("--operator", "rep-2") == [("rep-2", "account.disable", "account:amy")]
    assert actions("--account", "AMY") == [
        ("rep-2", "account.disable", "account:amy"),
        ("test-operator", "account.create", "account:amy"),
    ]
    assert actions("--action", "account.create", "--limit", "1") == [
        ("test-operator", "account.create", "account:bob")
    ]
    assert actions("--since", "2000-01-01", "--until", "2000-01-02") == []
    assert len(actions("--since", datetime.now(UTC).strftime("%Y-%m-%d"))) == 3


def test_tin_filter_and_masking(backend):
    moment = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with backend.begin() as connection:
        record_audit(
            connection,
            operator="op\r\nX-Injected: 1",
            action="test.tin",
            target="tin:x",
            tin=Tin("061137531"),
            now=moment,
            details={"tin": Tin("061137531"), "nested": [{"tin": Tin("836576879")}]},
        )
        record_audit(
            connection,
            operator="op",
            action="test.other",
            target=None,
            now=moment + timedelta(hours=1),
        )
    with backend.engine.connect() as connection:
        found = list(list_audit(connection, AuditFilter(tin=Tin("061137531"))))
        stored = connection.execute(sa.text("SELECT details FROM audit_log")).scalars().all()
    assert [r["action"] for r in found] == ["test.tin"]
    assert found[0]["at"] == moment
    assert found[0]["operator"] == "op  X-Injected: 1"
    assert "061137531" not in str(stored) and "836576879" not in str(stored)
    assert "*****7531" in str(stored)


def test_audit_command_masks_and_reveal_is_itself_audited(backend, cli):
    created = cli(
        "accounts",
        "create",
        "-u",
        "bob",
        "-e",
        "bob@example.org",
        "-n",
        "Bob",
        "--tin",
        "836576879",
    )
    assert created.exit_code == 0, created.stderr
    linked = cli("tins", "link", "-u", "bob", "--tin", "836576879", "--reason", "x")
    assert linked.exit_code == 4  # already held: a refusal writes nothing
    cli("tins", "unlink", "-u", "bob", "--tin", "836576879", "--reason", "left")
    for fmt in ("table", "json", "csv"):
        masked = cli("audit", "--tin", "836576879", "-f", fmt)
        assert masked.exit_code == 0, masked.stderr
        assert "*****6879" in masked.stdout and "836576879" not in masked.stdout
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'tin.reveal'") == 0
    revealed = cli("audit", "--tin", "836576879", "--reveal", "-f", "json").json()
    assert [(r["action"], r["tin"]) for r in revealed] == [("tin.unlink", "836576879")]
    reveal = backend.rows("SELECT operator, details FROM audit_log WHERE action = 'tin.reveal'")
    assert [r["operator"] for r in reveal] == ["test-operator"]
    assert "836576879" not in str(reveal[0]["details"])
    bad = cli("audit", "--tin", "12")
    assert bad.exit_code == 5 and bad.stderr.startswith("portalctl: invalid TIN")


def test_a_reveal_record_names_what_was_revealed_masked(backend, cli):
    for name, tin in (("ann", "836576879"), ("bob", "061137531")):
        created = cli(
            "accounts",
            "create",
            "-u",
            name,
            "-e",
            f"{name}@example.org",
            "-n",
            name.title(),
            "--tin",
            tin,
        )
        assert created.exit_code == 0, created.stderr
    found = cli("accounts", "find", "--email", "example.org", "--reveal", "-f", "json")
    assert {t["tin"] for a in found.json() for t in a["tins"]} == {"836576879", "061137531"}
    [record] = backend.rows(
        "SELECT target, account, details FROM audit_log WHERE action = 'tin.reveal'"
    )
    details = record["details"]
    details = json.loads(details) if isinstance(details, str) else details  # SQLite: JSON text
    assert record["target"] == "accounts find" and record["account"] is None
    assert details["accounts"] == ["ann", "bob"] and details["account_count"] == 2
    assert sorted(details["tins"]) == ["*****6879", "*****7531"]
    assert "836576879" not in str(record) and "061137531" not in str(record)
