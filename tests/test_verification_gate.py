"""The gate (SPEC section 1, "Verification and the verified caller"): `consolidate one` needs the
secondary verified by a security answer or PIN and an email code and the primary by its
password; `tins link --code` needs the account's password and an email code; each missing factor
is named, nothing is written; `--override-reason` goes ahead and says so in the audit record;
a window ends by the clock; bulk `consolidate run` is not gated. On both backends."""

from datetime import UTC, datetime, timedelta

import pytest
from credentials_support import PASSWORD, audit_details, code_in, eml_messages, settings_for
from flow_support import (
    ADMIN_EMAIL,
    ANSWER,
    EXISTING,
    NEW_TIN,
    OLD,
    OLD_EMAIL,
    create,
    registration_code,
    seed_000,
    verify_by,
)

from portalctl.core.database import transaction
from portalctl.core.errors import Refused
from portalctl.domain.consolidation import consolidate_one
from portalctl.domain.email_codes import confirm_email, send_email_code
from portalctl.domain.verification import verify_account

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOW_TO = (
    " (no current verification); verify the caller first (`accounts verify`, `accounts "
    "email-code` and `confirm-email`, or `portalctl flow`), or give --override-reason if you "
    "established their identity another way\n"
)


@pytest.fixture
def accounts(cli):
    seed_000(cli)


def merge(cli, *extra):
    return cli("consolidate", "one", "-p", EXISTING, "-s", OLD, "-f", "json", *extra)


def changes(backend):
    """Everything a refused change must leave as it was."""
    return {
        "audit": backend.scalar("SELECT count(*) FROM audit_log"),
        "accounts": backend.rows("SELECT username, status, merged_into FROM accounts ORDER BY id"),
        "links": backend.rows("SELECT account_id, tin, role FROM account_tins ORDER BY 1, 2"),
        "codes": backend.rows("SELECT status FROM registration_codes ORDER BY id"),
        "failures": backend.rows("SELECT tin, failed_code_attempts FROM organisations ORDER BY 1"),
    }


@pytest.mark.parametrize(
    "verified, missing",
    [
        (
            (),
            f"secondary '{OLD}': a security answer or PIN and an email code; primary "
            f"'{EXISTING}': its password",
        ),
        (
            ("security_answer",),
            f"secondary '{OLD}': an email code; primary '{EXISTING}': its password",
        ),
        (("pin", "email_code"), f"primary '{EXISTING}': its password"),
        (("email_code", "primary_password"), f"secondary '{OLD}': a security answer or PIN"),
        (("security_answer", "primary_password"), f"secondary '{OLD}': an email code"),
        (
            ("password", "email_code", "primary_password"),
            f"secondary '{OLD}': a security answer or PIN",
        ),
    ],
    ids=["nothing", "answer", "pin-email", "email-password", "answer-password", "wrong-factor"],
)
def test_consolidate_one_names_each_missing_factor_and_writes_nothing(
    accounts, cli, backend, verified, missing
):
    for method in verified:
        if method == "primary_password":
            verify_by(cli, backend, "password", EXISTING)
        else:
            verify_by(cli, backend, method)
    before = changes(backend)
    result = merge(cli)
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == f"portalctl: not verified: {missing}{HOW_TO}"
    assert changes(backend) == before


def verify_the_caller(cli, backend, knowledge="security_answer"):
    verify_by(cli, backend, knowledge)
    verify_by(cli, backend, "email_code")
    verify_by(cli, backend, "password", EXISTING)


@pytest.mark.parametrize("knowledge", ["security_answer", "pin"])
def test_consolidate_one_merges_a_verified_caller(accounts, cli, backend, knowledge):
    verify_the_caller(cli, backend, knowledge)
    result = merge(cli)
    assert result.exit_code == 0, result.stderr
    assert (result.json()["outcome"], result.json()["not_verified"]) == ("merged", [])
    [details] = audit_details(backend, "account.consolidate")
    assert details["verification"] == "verified" and "override_reason" not in details


def test_an_override_reason_merges_and_the_audit_record_says_so(accounts, cli, backend):
    verify_by(cli, backend, "password", EXISTING)
    result = merge(cli, "--override-reason", "caller verified by a video call")
    assert result.exit_code == 0, result.stderr
    assert result.json()["not_verified"] == [
        f"secondary '{OLD}': a security answer or PIN and an email code"
    ]
    [details] = audit_details(backend, "account.consolidate")
    assert details | {"line": None} == {
        "primary": EXISTING,
        "secondary": OLD,
        "line": None,
        "batch_id": None,
        "tin": None,
        "verification": "override",
        "override_reason": "caller verified by a video call",
        "not_verified": f"secondary '{OLD}': a security answer or PIN and an email code",
    }


def test_a_blank_override_reason_is_a_usage_error(accounts, cli, backend):
    before = changes(backend)
    result = merge(cli, "--override-reason", "  ")
    assert (result.exit_code, result.stderr) == (
        2,
        "portalctl: --override-reason must say how you established the caller's identity (it "
        "is kept in the audit log)\n",
    )
    assert changes(backend) == before


def test_a_dry_run_is_not_gated_and_says_what_the_merge_still_needs(accounts, cli, backend):
    verify_by(cli, backend, "security_answer")
    before = changes(backend)
    result = merge(cli, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.json()["outcome"] == "would_merge"
    assert result.json()["not_verified"] == [
        f"secondary '{OLD}': an email code",
        f"primary '{EXISTING}': its password",
    ]
    assert changes(backend) == before


def test_a_merge_already_made_needs_no_verification(accounts, cli):
    assert merge(cli, "--override-reason", "verified by phone").exit_code == 0
    again = merge(cli)
    assert again.exit_code == 0, again.stderr
    assert again.json()["outcome"] == "already_merged"


def test_a_bulk_run_is_not_gated(accounts, cli, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f"primary_username,secondary_username\n{EXISTING},{OLD}\n")
    result = cli("consolidate", "run", str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["merged"] == 1


@pytest.fixture
def james(cli):
    create(cli, "james.smith", ADMIN_EMAIL)
    return registration_code(cli)


def link(cli, code, *extra):
    return cli("tins", "link", "-u", "james.smith", "--tin", NEW_TIN, "--code", code, *extra)


def verify_james(cli, backend, *methods):
    for method in methods:
        if method == "password":
            result = cli(
                "accounts", "verify", "james.smith", "--password-stdin", input=PASSWORD + "\n"
            )
        else:
            cli("accounts", "email-code", "james.smith", "--email", ADMIN_EMAIL)
            code = code_in(eml_messages(backend)[-1])
            result = cli("accounts", "confirm-email", "james.smith", "--code", code)
        assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "verified, missing",
    [
        ((), "its password and an email code"),
        (("password",), "an email code"),
        (("email_code",), "its password"),
    ],
)
def test_linking_with_a_code_names_each_missing_factor_and_counts_nothing(
    james, cli, backend, verified, missing
):
    verify_james(cli, backend, *verified)
    before = changes(backend)
    result = link(cli, james)
    assert result.exit_code == 4
    assert result.stderr == f"portalctl: not verified: account 'james.smith': {missing}{HOW_TO}"
    assert changes(backend) == before


def test_an_unverified_link_is_refused_before_its_code_is_checked(james, cli, backend):
    before = changes(backend)
    result = link(cli, "12345678")
    assert result.exit_code == 4 and result.stderr.startswith("portalctl: not verified: ")
    assert changes(backend) == before  # the wrong code was not counted against the TIN


def test_linking_with_a_code_goes_ahead_for_a_verified_account(james, cli, backend):
    verify_james(cli, backend, "password", "email_code")
    result = link(cli, james, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["role"] == "security_admin"
    assert audit_details(backend, "tin.link")[0]["verification"] == "verified"


def test_an_override_reason_links_and_the_audit_record_says_so(james, cli, backend):
    result = link(cli, james, "--override-reason", "known to the rep: a face-to-face visit")
    assert result.exit_code == 0, result.stderr
    [details] = audit_details(backend, "tin.link")
    assert (details["verification"], details["override_reason"], details["not_verified"]) == (
        "override",
        "known to the rep: a face-to-face visit",
        "account 'james.smith': its password and an email code",
    )


def test_an_override_reason_on_a_manual_link_is_a_usage_error(james, cli):
    result = cli(
        "tins",
        "link",
        "-u",
        "james.smith",
        "--tin",
        NEW_TIN,
        "--reason",
        "x",
        "--override-reason",
        "y",
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "portalctl: --override-reason is for links with a registration code\n",
    )


def test_the_gate_counts_verifications_within_the_window_by_the_clock(accounts, backend):
    """Verified at T (answer, password) and T+10 min (email code): a merge at T+29 min goes
    ahead; at T+30 min the answer and the password have run out."""
    settings = settings_for(backend)
    with transaction(backend.engine) as connection:
        verify_account(connection, operator="rep", username=OLD, answer=ANSWER, now=T)
        verify_account(connection, operator="rep", username=EXISTING, password=PASSWORD, now=T)
    send_email_code(
        backend.engine, operator="rep", username=OLD, email=OLD_EMAIL, settings=settings, now=T
    )
    with transaction(backend.engine) as connection:
        confirm_email(
            connection,
            operator="rep",
            username=OLD,
            code=code_in(eml_messages(backend)[-1]),
            settings=settings,
            now=T + timedelta(minutes=10),
        )

    def merge_at(minutes, **options):
        with backend.engine.connect() as connection, connection.begin() as outer:
            try:
                return consolidate_one(
                    connection,
                    operator="rep",
                    primary=EXISTING,
                    secondary=OLD,
                    now=T + timedelta(minutes=minutes),
                    **options,
                )
            finally:
                outer.rollback()

    assert merge_at(29)["outcome"] == "merged"
    assert merge_at(30, dry_run=True)["not_verified"] == [
        f"secondary '{OLD}': a security answer or PIN",
        f"primary '{EXISTING}': its password",
    ]
    with pytest.raises(Refused, match=f"^not verified: secondary '{OLD}': a security answer"):
        merge_at(30)
