"""The verified caller's records (SPEC section 1): every successful check (security answer, PIN,
password, email code, registration code) writes one verification in the transaction of its
audit record; `accounts verify` and `accounts verified` say until when it counts; a window ends
by the clock, on both backends."""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import TEST_OPERATOR
from credentials_support import code_in, eml_messages, settings_for
from flow_support import ANSWER, OLD, OLD_EMAIL, registration_code, seed_000, verify_by

from portalctl.core.database import transaction
from portalctl.domain.email_codes import confirm_email, send_email_code
from portalctl.domain.verification import verify_account
from portalctl.domain.verification_records import current_verifications

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def verification_rows(backend):
    return backend.rows(
        "SELECT a.username, v.tin, v.method, v.operator, v.verified_at, v.valid_until, "
        "v.flow_id FROM verifications v LEFT JOIN accounts a ON a.id = v.account_id ORDER BY v.id"
    )


@pytest.fixture
def accounts(cli):
    seed_000(cli)


@pytest.mark.parametrize(
    "method, audited",
    [
        ("security_answer", "account.verify"),
        ("pin", "account.verify"),
        ("password", "account.verify"),
        ("email_code", "account.confirm_email"),
        ("registration_code", "code.verify"),
    ],
)
def test_each_successful_check_writes_one_verification_beside_its_audit_record(
    accounts, cli, backend, method, audited
):
    verify_by(cli, backend, method)
    [row] = verification_rows(backend)
    assert (row["username"], row["method"], row["operator"], row["flow_id"]) == (
        None if method == "registration_code" else OLD,
        method,
        TEST_OPERATOR,
        None,
    )
    assert row["tin"] == ("061137531" if method == "registration_code" else None)
    audited_at = backend.rows(
        "SELECT at FROM audit_log WHERE action = :a ORDER BY id DESC LIMIT 1", a=audited
    )[0]["at"]
    assert str(row["verified_at"])[:19] == str(audited_at)[:19]


@pytest.mark.parametrize("method", ["security_answer", "pin", "password"])
def test_a_failed_check_writes_no_verification(accounts, cli, backend, method):
    option = {"security_answer": "--answer-stdin", "pin": "--pin-stdin"}.get(method)
    result = cli("accounts", "verify", OLD, option or "--password-stdin", input="0000\n")
    assert result.exit_code == 4
    assert verification_rows(backend) == []


def test_a_code_linking_a_tin_verifies_the_account_it_links(accounts, cli, backend):
    code = registration_code(cli)
    for method in ("password", "email_code"):
        verify_by(cli, backend, method)
    linked = cli("tins", "link", "-u", OLD, "--tin", "061137531", "--code", code)
    assert linked.exit_code == 0, linked.stderr
    assert [(r["username"], r["tin"], r["method"]) for r in verification_rows(backend)][-1] == (
        OLD,
        "061137531",
        "registration_code",
    )


def test_verify_prints_when_the_verification_was_made_and_until_when(accounts, cli):
    result = cli("accounts", "verify", OLD, "--answer", ANSWER, "-f", "json")
    record = result.json()
    assert set(record) >= {"username", "method", "verified", "verified_at", "valid_until"}
    verified_at = datetime.fromisoformat(record["verified_at"].replace("Z", "+00:00"))
    valid_until = datetime.fromisoformat(record["valid_until"].replace("Z", "+00:00"))
    assert valid_until - verified_at == timedelta(minutes=30)
    failed = cli("accounts", "verify", OLD, "--answer", "Jones", "-f", "json")
    assert failed.exit_code == 4
    assert (failed.json()["verified"], failed.json()["valid_until"]) == (False, None)


def test_the_window_is_the_setting_when_the_check_is_made(accounts, cli):
    env = {"PORTALCTL_VERIFICATION_WINDOW_MINUTES": "5"}
    record = cli("accounts", "verify", OLD, "--answer", ANSWER, "-f", "json", env=env).json()
    verified_at = datetime.fromisoformat(record["verified_at"].replace("Z", "+00:00"))
    valid_until = datetime.fromisoformat(record["valid_until"].replace("Z", "+00:00"))
    assert valid_until - verified_at == timedelta(minutes=5)
    listed = cli("accounts", "verified", OLD, "-f", "json").json()
    assert [row["valid_until"] for row in listed] == [record["valid_until"]]


@pytest.mark.parametrize("value", ["0", "1441", "half an hour"])
def test_a_window_setting_out_of_range_is_a_configuration_error(accounts, cli, value):
    result = cli(
        "accounts",
        "verify",
        OLD,
        "--answer",
        ANSWER,
        env={"PORTALCTL_VERIFICATION_WINDOW_MINUTES": value},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("portalctl: PORTALCTL_VERIFICATION_WINDOW_MINUTES must be")


def test_verified_lists_the_latest_current_verification_of_each_method(accounts, cli, backend):
    for method in ("security_answer", "password"):
        verify_by(cli, backend, method)
    latest = cli("accounts", "verify", OLD, "--answer", ANSWER, "-f", "json").json()
    listed = cli("accounts", "verified", OLD.upper(), "-f", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = listed.json()
    assert [(r["username"], r["method"]) for r in rows] == [
        (OLD, "password"),
        (OLD, "security_answer"),
    ]
    assert set(rows[0]) == {
        "username",
        "method",
        "verified_at",
        "valid_until",
        "operator",
        "flow_id",
    }
    assert (rows[1]["verified_at"], rows[1]["valid_until"]) == (
        latest["verified_at"],
        latest["valid_until"],
    )
    assert len(verification_rows(backend)) == 3
    assert cli("accounts", "verified", "johnsmith@gmail.com").stdout == "(no rows)\n"
    missing = cli("accounts", "verified", "ghost")
    assert (missing.exit_code, missing.stderr) == (
        3,
        "portalctl: no account with username 'ghost'\n",
    )


def test_verifications_end_with_their_window_by_the_clock(accounts, backend):
    settings = settings_for(backend)
    with transaction(backend.engine) as connection:
        verify_account(connection, operator="rep", username=OLD, answer=ANSWER, now=T)
    send_email_code(
        backend.engine, operator="rep", username=OLD, email=OLD_EMAIL, settings=settings, now=T
    )
    code = code_in(eml_messages(backend)[-1])
    with transaction(backend.engine) as connection:
        confirm_email(
            connection,
            operator="rep",
            username=OLD,
            code=code,
            settings=settings,
            now=T + timedelta(minutes=10),
        )
    with backend.engine.connect() as connection:

        def current(minutes):
            found = current_verifications(
                connection, username=OLD, now=T + timedelta(minutes=minutes)
            )
            return [row["method"] for row in found]

        assert current(0) == current(29) == ["security_answer", "email_code"]
        assert current(30) == current(39) == ["email_code"]
        assert current(40) == []
