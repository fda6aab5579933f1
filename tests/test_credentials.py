"""The caller's credentials on both backends: PIN and security answer set and verified, the
password rules at every entry point, the emailed reset code, Argon2id replacing old scrypt
hashes, a rep's direct update, and "Forgot Username"."""

import base64
import hashlib
import os

import pytest
from credentials_support import (
    PASSWORD,
    audit_details,
    body_of,
    code_in,
    eml_messages,
    make_account,
)
from smtp_server import ScriptedHandler, SmtpServer

USER = "jsmith_old"
EMAIL = "john.smith@practice.example"


@pytest.fixture
def john(cli):
    make_account(cli, USER, EMAIL, answer="Smith")


def verify(cli, *args, input=None):
    return cli("accounts", "verify", USER, *args, "-f", "json", input=input)


def test_a_pin_is_set_and_verified_and_failures_are_counted(john, cli, backend):
    result = cli("accounts", "set-security", USER, "--pin-stdin", input="4821\n")
    assert result.exit_code == 0, result.stderr
    assert backend.scalar("SELECT pin_hash FROM accounts").startswith("$argon2id$")
    ok = verify(cli, "--pin-stdin", input=" 4821 \n")
    assert ok.exit_code == 0 and ok.json()["method"] == "pin"
    bad = verify(cli, "--pin-stdin", input="1111\n")
    assert (bad.exit_code, bad.stderr) == (4, "portalctl: not verified (1 failed attempt(s))\n")
    assert bad.json()["verified"] is False
    not_a_pin = verify(cli, "--pin-stdin", input="12a4\n")
    assert (not_a_pin.exit_code, not_a_pin.stderr) == (
        5,
        "portalctl: invalid PIN: expected 4 to 8 digits\n",
    )
    assert backend.scalar("SELECT failed_verifications FROM accounts") == 1
    for _ in range(4):
        verify(cli, "--pin-stdin", input="0000\n")
    assert backend.scalar("SELECT status FROM accounts") == "locked"


@pytest.mark.parametrize("pin", ["123", "123456789", "12 34", "１２３４"])
def test_a_pin_is_4_to_8_ascii_digits(john, cli, backend, pin):
    result = cli("accounts", "set-security", USER, "--pin-stdin", input=pin + "\n")
    assert (result.exit_code, result.stderr) == (
        5,
        "portalctl: invalid PIN: expected 4 to 8 digits\n",
    )
    assert backend.scalar("SELECT pin_hash FROM accounts") is None


def test_a_new_question_and_answer_replace_the_old(john, cli, backend):
    result = cli(
        "accounts",
        "set-security",
        USER,
        "--question",
        "First pet?",
        "--answer-stdin",
        input="Rex  the Dog\n",
    )
    assert result.exit_code == 0, result.stderr
    shown = cli("accounts", "show", USER, "-f", "json").json()
    assert shown["security_question"] == "First pet?"
    assert verify(cli, "--answer", "rex the dog").exit_code == 0
    assert verify(cli, "--answer", "Smith").exit_code == 4
    audit = backend.rows("SELECT details FROM audit_log WHERE action = 'account.set_security'")
    assert "Rex" not in str(audit)


def test_question_and_pin_together_read_the_answer_line_first(john, cli):
    result = cli(
        "accounts",
        "set-security",
        USER,
        "--question",
        "First pet?",
        "--answer-stdin",
        "--pin-stdin",
        input="Rex\n98765\n",
    )
    assert result.exit_code == 0, result.stderr
    assert verify(cli, "--answer", "rex").exit_code == 0
    assert verify(cli, "--pin-stdin", input="98765\n").exit_code == 0


def test_set_security_needs_something_to_set_and_verify_names_what_is_missing(john, cli):
    nothing = cli("accounts", "set-security", USER)
    assert (nothing.exit_code, nothing.stderr) == (
        2,
        "portalctl: give --question (its answer is asked for) and/or --pin\n",
    )
    no_pin = verify(cli, "--pin-stdin", input="1234\n")
    assert (no_pin.exit_code, no_pin.stderr) == (4, f"portalctl: account '{USER}' has no PIN\n")
    at_terminal = cli("accounts", "set-security", USER, "--pin", input="1234\n")
    assert at_terminal.exit_code == 2 and "--pin-stdin" in at_terminal.stderr


RULES = [
    ("Short-pw-1", "the password must be at least 12 characters long"),
    ("P" * 129, "the password must be at most 128 characters long"),
    ("my-JSMITH_OLD-pass", "the password must not contain the username"),
    ("John.Smith-2026!", "the password must not contain the email address's local part"),
]


def _create(cli, backend, tmp_path, password):
    return cli(
        "accounts",
        "create",
        "-u",
        USER,
        "-e",
        EMAIL,
        "-n",
        "John",
        "--password-stdin",
        input=password + "\n",
    )


def _set_password(cli, backend, tmp_path, password):
    assert cli("accounts", "create", "-u", USER, "-e", EMAIL, "-n", "John").exit_code == 0
    return cli(
        "accounts",
        "set-password",
        USER,
        "--reason",
        "caller verified",
        "--password-stdin",
        input=password + "\n",
    )


def _register(cli, backend, tmp_path, password):
    issued = cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        "John",
        "--admin-email",
        EMAIL,
        "--no-email",
        "-f",
        "json",
    ).json()
    result = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "-u",
        USER,
        "-e",
        EMAIL,
        "-n",
        "John",
        "--password-stdin",
        input=password + "\n",
    )
    assert backend.scalar("SELECT status FROM registration_codes") == "active"
    assert backend.scalar("SELECT failed_code_attempts FROM organisations") == 0
    return result


def _import(cli, backend, tmp_path, password):
    path = tmp_path / "accounts.csv"
    path.write_text(f"username,email,full_name,password\n{USER},{EMAIL},John,{password}\n")
    result = cli("accounts", "import", str(path))
    result.stderr = result.stderr.replace(f"{path}:2: ", "")
    return result


@pytest.mark.parametrize("password,rule", RULES, ids=["short", "long", "username", "local-part"])
@pytest.mark.parametrize(
    "entry",
    [_create, _set_password, _register, _import],
    ids=["create", "set-password", "register", "import"],
)
def test_every_entry_point_refuses_a_password_naming_the_rule(
    cli, backend, tmp_path, entry, password, rule
):
    result = entry(cli, backend, tmp_path, password)
    assert (result.exit_code, result.stderr) == (5, f"portalctl: {rule}\n")
    assert backend.scalar("SELECT count(*) FROM accounts WHERE password_hash IS NOT NULL") == 0


def test_a_password_of_12_and_of_128_characters_is_accepted(cli):
    for index, password in enumerate(["Twelve-chars", "x" * 128]):
        result = cli(
            "accounts",
            "create",
            "-u",
            f"user{index}",
            "-e",
            f"u{index}@example.org",
            "-n",
            "U",
            "--password-stdin",
            input=password + "\n",
        )
        assert result.exit_code == 0, result.stderr


def test_a_reset_code_round_trip(john, cli, backend):
    new_password = "Harbour-Lights-77"
    with SmtpServer(ScriptedHandler()) as server:
        env = {"PORTALCTL_SMTP_URL": server.url}
        sent = cli("accounts", "reset-password", USER, "-f", "json", env=env)
    assert sent.exit_code == 0, sent.stderr
    assert set(sent.json()) == {"id", "username", "email_id", "expires_at"}
    [message] = server.handler.received
    assert server.handler.envelopes[0][1] == [EMAIL]
    code = code_in(message)
    body = body_of(message)
    assert f"account {USER}" in body and "expires 30 minutes after" in body
    assert code not in sent.stdout + sent.stderr
    assert backend.scalar("SELECT kind FROM outbox") == "password_reset"
    too_short = cli(
        "accounts",
        "set-password",
        USER,
        "--reset-code",
        code,
        "--password-stdin",
        input="short\n",
    )
    assert too_short.exit_code == 5
    assert backend.scalar("SELECT attempts FROM account_codes") == 0
    changed = cli(
        "accounts",
        "set-password",
        USER,
        "--reset-code",
        code,
        "--password-stdin",
        input=new_password + "\n",
    )
    assert changed.exit_code == 0, changed.stderr
    assert verify(cli, "--password-stdin", input=new_password + "\n").exit_code == 0
    assert verify(cli, "--password-stdin", input=PASSWORD + "\n").exit_code == 4
    reused = cli(
        "accounts",
        "set-password",
        USER,
        "--reset-code",
        code,
        "--password-stdin",
        input="Another-Password-9\n",
    )
    assert (reused.exit_code, reused.stderr) == (4, "portalctl: reset code refused: used\n")
    assert [d["via"] for d in audit_details(backend, "account.set_password")] == ["reset_code"]


def test_a_wrong_reset_code_is_counted_and_a_missing_one_is_exit_3(john, cli, backend):
    missing = cli(
        "accounts",
        "set-password",
        USER,
        "--reset-code",
        "123456",
        "--password-stdin",
        input="Harbour-Lights-77\n",
    )
    assert (missing.exit_code, missing.stderr) == (
        3,
        f"portalctl: no reset code was issued for account '{USER}'\n",
    )
    assert cli("accounts", "reset-password", USER).exit_code == 0
    code = code_in(eml_messages(backend)[0])
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    result = cli(
        "accounts",
        "set-password",
        USER,
        "--reset-code",
        wrong,
        "--password-stdin",
        input="Harbour-Lights-77\n",
    )
    assert (result.exit_code, result.stderr) == (
        4,
        "portalctl: reset code refused: wrong (1 of 5 wrong entries)\n",
    )
    assert backend.scalar("SELECT attempts FROM account_codes") == 1
    # A password the rules refuse is invalid input, refused before the code is even checked.
    refused = cli(
        "accounts", "set-password", USER, "--reset-code", wrong, "--password-stdin", input="short\n"
    )
    assert refused.exit_code == 5
    assert backend.scalar("SELECT attempts FROM account_codes") == 1


def test_set_password_needs_exactly_one_of_a_reset_code_and_a_reason(john, cli):
    for args in ([], ["--reset-code", "123456", "--reason", "x"]):
        result = cli(
            "accounts", "set-password", USER, *args, "--password-stdin", input="Harbour-Lights-77\n"
        )
        assert (result.exit_code, result.stderr) == (
            2,
            "portalctl: give --reset-code (from `accounts reset-password`) or --reason\n",
        )


def test_a_rep_sets_a_password_with_a_reason(john, cli, backend):
    result = cli(
        "accounts",
        "set-password",
        USER,
        "--reason",
        "verified by phone",
        "--password-stdin",
        input="Harbour-Lights-77\n",
    )
    assert result.exit_code == 0, result.stderr
    assert verify(cli, "--password-stdin", input="Harbour-Lights-77\n").exit_code == 0
    assert audit_details(backend, "account.set_password") == [
        {"via": "rep", "reason": "verified by phone"}
    ]


def old_scrypt_hash(plain: str) -> str:
    """A hash as portalctl wrote them before Argon2id (``scrypt$n$r$p$salt$hash``)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        plain.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32
    )
    return "$".join(
        [
            "scrypt",
            "16384",
            "8",
            "1",
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


@pytest.mark.parametrize(
    "column,plain,args,stdin",
    [
        ("password_hash", PASSWORD, ["--password-stdin"], PASSWORD + "\n"),
        ("security_answer_hash", "smith", ["--answer", " SMITH "], None),
        ("pin_hash", "4821", ["--pin-stdin"], "4821\n"),
    ],
    ids=["password", "answer", "pin"],
)
def test_an_old_scrypt_hash_verifies_and_is_replaced_by_argon2id(
    john, cli, backend, column, plain, args, stdin
):
    old = old_scrypt_hash(plain)
    with backend.begin() as connection:
        connection.exec_driver_sql(f"UPDATE accounts SET {column} = '{old}'")
    wrong_stdin = "0000\n" if stdin else None
    wrong_args = args if stdin else ["--answer", "Jones"]
    assert verify(cli, *wrong_args, input=wrong_stdin).exit_code == 4
    assert backend.scalar(f"SELECT {column} FROM accounts") == old  # a failure upgrades nothing
    assert verify(cli, *args, input=stdin).exit_code == 0
    upgraded = backend.scalar(f"SELECT {column} FROM accounts")
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify(cli, *args, input=stdin).exit_code == 0
    assert backend.scalar(f"SELECT {column} FROM accounts") == upgraded  # upgraded once
    upgrades = [d["hash_upgraded"] for d in audit_details(backend, "account.verify")]
    assert upgrades == [False, True, False]


def test_a_reps_email_change_is_unverified_and_audited_with_old_and_new(john, cli, backend):
    assert cli("accounts", "email-code", USER, "--email", EMAIL).exit_code == 0
    assert (
        cli(
            "accounts", "confirm-email", USER, "--code", code_in(eml_messages(backend)[0])
        ).exit_code
        == 0
    )
    assert backend.scalar("SELECT email_verified_at FROM accounts") is not None
    result = cli(
        "accounts",
        "update",
        USER,
        "--email",
        "john@new-practice.example",
        "--full-name",
        "John Q. Smith",
        "--reason",
        "caller's new address",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    assert (result.json()["email"], result.json()["full_name"]) == (
        "john@new-practice.example",
        "John Q. Smith",
    )
    assert backend.scalar("SELECT email_verified_at FROM accounts") is None
    assert audit_details(backend, "account.update") == [
        {
            "full_name": {"from": "John Smith", "to": "John Q. Smith"},
            "email": {"from": EMAIL, "to": "john@new-practice.example"},
            "email_was_verified": True,
            "reason": "caller's new address",
        }
    ]


def test_update_refusals(john, cli, backend):
    no_reason = cli("accounts", "update", USER, "--email", "a@example.org")
    assert (no_reason.exit_code, no_reason.stderr) == (
        2,
        "portalctl: --reason is required: say why (it is kept in the audit log)\n",
    )
    nothing = cli("accounts", "update", USER)
    assert nothing.exit_code == 2
    bad = cli("accounts", "update", USER, "--email", "not-an-email", "--reason", "x")
    assert bad.exit_code == 5 and "invalid email address 'not-an-email'" in bad.stderr
    name_only = cli("accounts", "update", USER, "--full-name", "Johnny Smith")
    assert name_only.exit_code == 0
    same = cli("accounts", "update", USER, "--full-name", "Johnny Smith")
    assert same.exit_code == 0
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'account.update'") == 1
    make_account(cli, "primary.john", "primary@example.org")
    cli(
        "consolidate",
        "one",
        "--primary",
        "primary.john",
        "--secondary",
        USER,
        "--override-reason",
        "verified by phone",
    )
    merged = cli("accounts", "update", USER, "--full-name", "X")
    assert (merged.exit_code, merged.stderr) == (
        4,
        f"portalctl: account '{USER}' is merged; it can no longer be changed\n",
    )


def test_send_username_emails_the_active_usernames_of_an_address(cli, backend):
    for username in ("johnsmith@gmail.com", "john.smith.2019", "jsmith_gone"):
        make_account(cli, username, "johnsmith@gmail.com")
    cli("accounts", "disable", "--yes", "jsmith_gone", "--reason", "left")
    with SmtpServer(ScriptedHandler()) as server:
        result = cli(
            "accounts",
            "send-username",
            "--email",
            "johnsmith@gmail.com",
            "-f",
            "json",
            env={"PORTALCTL_SMTP_URL": server.url},
        )
    assert result.exit_code == 0, result.stderr
    assert result.json() == {"email": "johnsmith@gmail.com", "email_id": 1}
    assert "john.smith.2019" not in result.stdout + result.stderr
    [message] = server.handler.received
    body = body_of(message)
    assert "    john.smith.2019\n    johnsmith@gmail.com\n" in body and "jsmith_gone" not in body
    assert backend.scalar("SELECT kind FROM outbox") == "username_reminder"
    assert backend.scalar("SELECT status FROM outbox") == "sent"
    none = cli("accounts", "send-username", "--email", "nobody@example.org")
    assert (none.exit_code, none.stderr) == (
        3,
        "portalctl: no active account is registered to 'nobody@example.org'\n",
    )


def test_register_refuses_a_bad_password_before_counting_a_wrong_code(cli, backend):
    cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        "M",
        "--admin-email",
        "m@example.org",
        "--no-email",
    )
    result = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        "00000000",
        "-u",
        "mgarcia",
        "-e",
        "m@example.org",
        "-n",
        "M",
        "--password-stdin",
        input="short\n",
    )
    assert (result.exit_code, result.stderr) == (
        5,
        "portalctl: the password must be at least 12 characters long\n",
    )
    assert backend.scalar("SELECT failed_code_attempts FROM organisations") == 0


def test_register_takes_a_security_question_with_its_answer_from_stdin(cli, backend):
    issued = cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        "Maria",
        "--admin-email",
        "maria@example.org",
        "--no-email",
        "-f",
        "json",
    ).json()
    result = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code-stdin",
        "-u",
        "mgarcia",
        "-e",
        "maria@example.org",
        "-n",
        "Maria Garcia",
        "--security-question",
        "First pet?",
        "--answer-stdin",
        "--password-stdin",
        input=f"{issued['code']}\nRex\nHarbour-Lights-77\n",
    )
    assert result.exit_code == 0, result.stderr
    assert cli("accounts", "verify", "mgarcia", "--answer", "rex").exit_code == 0
    assert (
        cli(
            "accounts", "verify", "mgarcia", "--password-stdin", input="Harbour-Lights-77\n"
        ).exit_code
        == 0
    )
