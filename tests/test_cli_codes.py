"""`portalctl codes ...` end to end through the CLI, re-checked in the database."""

import pytest

TIN = "061137531"


@pytest.fixture
def issued(cli):
    result = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        "James Smith",
        "--admin-email",
        "james.smith@example.org",
        "--provider-name",
        "Ruth Goneh",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_issue_prints_the_code_once_with_a_masked_tin(issued, cli, backend):
    assert issued["tin"] == "*****7531" and len(issued["code"]) == 8
    assert TIN not in str(issued)
    shown = cli("codes", "show", str(issued["id"]), "--format", "json").json()
    assert "code" not in shown and shown["status"] == "active"
    assert backend.scalar("SELECT count(*) FROM organisations") == 1
    assert backend.scalar("SELECT count(*) FROM outbox") == 1


def test_issue_with_no_email_queues_nothing(cli, backend):
    result = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
        "--no-email",
    )
    assert result.exit_code == 0, result.stderr
    assert backend.scalar("SELECT count(*) FROM outbox") == 0


def test_issue_with_an_invalid_email_exits_5_and_writes_nothing(cli, backend):
    result = cli("codes", "issue", "--tin", TIN, "--admin-name", "A", "--admin-email", "nope")
    assert result.exit_code == 5 and "invalid admin email 'nope'" in result.stderr
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0


def test_verify_exits_0_for_a_valid_code(issued, cli):
    result = cli("codes", "verify", "--tin", TIN, "--code", issued["code"])
    assert result.exit_code == 0, result.stderr


def test_wrong_codes_exit_4_and_the_fifth_locks(issued, cli, backend):
    wrong = "00000000" if issued["code"] != "00000000" else "11111111"
    for _ in range(5):
        result = cli("codes", "verify", "--tin", TIN, "--code", wrong)
        assert result.exit_code == 4 and "code refused: wrong" in result.stderr
    assert "now locked" in result.stderr
    assert backend.scalar("SELECT failed_code_attempts FROM organisations") == 5
    result = cli("codes", "verify", "--tin", TIN, "--code", issued["code"])
    assert result.exit_code == 4 and "code refused: locked" in result.stderr


def test_revoked_code_is_refused_with_its_reason(issued, cli):
    assert cli("codes", "revoke", str(issued["id"]), "--reason", "lost").exit_code == 0
    result = cli("codes", "verify", "--tin", TIN, "--code", issued["code"])
    assert result.exit_code == 4 and "code refused: revoked" in result.stderr
    again = cli("codes", "revoke", str(issued["id"]), "--reason", "lost")
    assert again.exit_code == 4


def test_expired_code_is_listed_as_expired_and_refused(issued, cli, backend):
    with backend.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE registration_codes SET issued_at = '2020-01-01 00:00:00',"
            " expires_at = '2020-01-02 00:00:00'"
        )
    listed = cli("codes", "list", "--status", "expired", "--format", "json").json()
    assert [row["id"] for row in listed] == [issued["id"]]
    result = cli("codes", "verify", "--tin", TIN, "--code", issued["code"])
    assert result.exit_code == 4 and "code refused: expired" in result.stderr


def test_reissue_prints_a_new_code_and_revokes_the_old(issued, cli):
    result = cli("codes", "reissue", str(issued["id"]), "--format", "json")
    assert result.exit_code == 0, result.stderr
    new = result.json()
    assert new["id"] != issued["id"] and new["replaces_id"] == issued["id"]
    assert cli("codes", "verify", "--tin", TIN, "--code", new["code"]).exit_code == 0
    assert cli("codes", "show", str(issued["id"]), "-f", "json").json()["status"] == "revoked"


def test_show_of_an_unknown_code_exits_3(cli):
    result = cli("codes", "show", "999")
    assert result.exit_code == 3 and "no registration code 999" in result.stderr


def test_no_plain_code_is_stored_in_any_text_column(issued, backend):
    import sqlalchemy as sa

    inspector = sa.inspect(backend.engine)
    for table in inspector.get_table_names():
        for row in backend.rows(f"SELECT * FROM {table}"):
            assert issued["code"] not in " ".join(str(v) for v in row.values()), table


def test_issue_csv_issues_every_row_and_queues_every_email(cli, backend, tmp_path):
    path = tmp_path / "credentialed.csv"
    path.write_text(
        "TIN,admin_name,admin_email,provider_name,org_name\n"
        "061137531,James Smith,james.smith@example.org,Ruth Goneh,Goneh Practice\n"
        "83-6576879,Ann Lee,ann@example.org,,\n"
        "836576879,Bob Roe,bob@example.org,Dr Roe,\n"
    )
    result = cli("codes", "issue", "--csv", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["codes_issued"] == 3 and result.json()["emails_queued"] == 3
    assert result.json()["organisations_created"] == 2
    assert backend.scalar("SELECT count(*) FROM outbox WHERE code_id IS NOT NULL") == 3
    assert backend.scalar("SELECT name FROM organisations WHERE tin = '061137531'") == (
        "Goneh Practice"
    )
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'code.issue'") == 3
    sent = cli("mail", "send", "--format", "json").json()
    assert sent["sent"] == 3
    assert backend.scalar("SELECT count(*) FROM outbox WHERE secret_ciphertext IS NULL") == 3


def test_issue_csv_with_a_bad_row_exits_5_naming_the_line_and_writes_nothing(
    cli, backend, tmp_path
):
    path = tmp_path / "bad.csv"
    path.write_text(
        "tin,admin_name,admin_email\n061137531,James Smith,j@example.org\n"
        "12345,Ann Lee,ann@example.org\n"
    )
    result = cli("codes", "issue", "--csv", str(path))
    assert result.exit_code == 5 and "bad.csv:3" in result.stderr
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0
    assert backend.scalar("SELECT count(*) FROM organisations") == 0


def test_issue_csv_dry_run_writes_nothing(cli, backend, tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("tin,admin_name,admin_email\n061137531,James Smith,j@example.org\n")
    result = cli("codes", "issue", "--csv", str(path), "--dry-run", "--format", "json")
    assert result.exit_code == 0 and result.json()["would_issue"] == 1
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0


def test_issue_without_a_secret_key_exits_with_a_clear_message(cli, backend):
    result = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
        env={"PORTALCTL_SECRET_KEY": ""},
    )
    assert result.exit_code != 0 and "PORTALCTL_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0


def test_issue_csv_emails_match_the_single_issue_text(cli, backend, tmp_path):
    from portalctl.core.config import Settings
    from portalctl.domain.emails import credentialing_body

    path = tmp_path / "two.csv"
    path.write_text(
        "tin,admin_name,admin_email,provider_name\n"
        "061137531,James Smith,j@example.org,Ruth Goneh\n"
        "836576879,Ann Lee,ann@example.org,\n"
    )
    assert cli("codes", "issue", "--csv", str(path)).exit_code == 0
    bodies = [row["body"] for row in backend.rows("SELECT body FROM outbox ORDER BY id")]
    settings = Settings(backend.env)
    assert bodies == [
        credentialing_body(settings, admin_name="James Smith", provider_name="Ruth Goneh"),
        credentialing_body(settings, admin_name="Ann Lee", provider_name=None),
    ]


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.org", "Eve\x1b[2J", "Eve\x00"])
def test_a_name_with_control_characters_is_refused_and_shown_escaped(cli, backend, name):
    result = cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        name,
        "--admin-email",
        "eve@example.org",
    )
    assert result.exit_code == 5
    assert result.stderr.startswith("portalctl: invalid admin name 'Eve\\")
    assert "\x1b" not in result.stderr and "\r" not in result.stderr and "\x00" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0
