"""The audit log: one record per change naming the operator, filters that combine, masked TINs."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from portalctl.core.tin import Tin
from portalctl.domain.audit import AuditFilter, list_audit, record_audit


def test_records_are_filtered_by_operator_action_account_tin_and_time(backend, cli):
    cli("accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy")
    cli("--operator", "rep-2", "accounts", "disable", "amy", "--reason", "left")
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
        found = list_audit(connection, AuditFilter(tin=Tin("061137531")))
        stored = connection.execute(sa.text("SELECT details FROM audit_log")).scalars().all()
    assert [r["action"] for r in found] == ["test.tin"]
    assert found[0]["at"] == moment
    assert found[0]["operator"] == "op  X-Injected: 1"
    assert "061137531" not in str(stored) and "836576879" not in str(stored)
    assert "*****7531" in str(stored)


def test_audit_command_masks_and_reveal_is_itself_audited(backend, cli):
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
    masked = cli("audit", "--tin", "836576879")
    assert masked.exit_code == 0
    revealed = cli("audit", "--action", "account.create", "--reveal", "-f", "json").json()
    assert revealed[0]["tin"] is None  # creation records the account, its TINs are in details
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'tin.reveal'") == 1
    bad = cli("audit", "--tin", "12")
    assert bad.exit_code == 5
