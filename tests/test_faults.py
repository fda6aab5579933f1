"""Bad input and faults, by class, on both backends: one readable stderr line, the documented
exit code, no traceback, no full TIN or hash in any output, and nothing written."""

from __future__ import annotations

import os
import stat
import time

import pytest
from consolidation_support import dump_tables

TIN = "061137531"


@pytest.fixture
def practice(cli):
    for name in ("ann", "bob"):
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
            f"{TIN}:security_admin",
            "--security-question",
            "Q?",
            "--security-answer",
            "blue",
        )
        assert created.exit_code == 0, created.stderr


def assert_one_clean_line(result, code: int, starts: str = "portalctl: ") -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.startswith(starts) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and TIN not in result.stderr + result.stdout
    assert "$argon2" not in result.stderr and "scrypt$" not in result.stderr


# Each (command, input file text or None): a NUL in a cell is invalid input naming the line.
NUL_INPUTS = [
    (["accounts", "import"], "username,email,full_name\nzed,zed@example.org,Z\x00ed\n"),
    (["codes", "issue", "--csv"], f"tin,admin_name,admin_email\n{TIN},Z\x00,z@example.org\n"),
    (["consolidate", "run"], "primary_username,secondary_username\nann,b\x00ob\n"),
    (["accounts", "find", "--csv"], "username\nan\x00n\n"),
    (["accounts", "lookup", "--csv"], f"username,tin\nan\x00n,{TIN}\n"),
]


@pytest.mark.parametrize(
    "command, text", NUL_INPUTS, ids=lambda v: v[0] if isinstance(v, list) else ""
)
def test_a_nul_in_a_cell_is_invalid_input_naming_the_line(
    practice, cli, backend, tmp_path, command, text
):
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    before = dump_tables(backend)
    result = cli(*command, str(path))
    assert_one_clean_line(result, 5, f"portalctl: {path}")
    assert f"{path}:2: " in result.stderr and "NUL character" in result.stderr
    assert dump_tables(backend) == before


@pytest.mark.parametrize(
    "args",
    [
        ["accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "A" * 201],
        [
            "accounts",
            "create",
            "-u",
            "amy",
            "-e",
            "amy@example.org",
            "-n",
            "Amy",
            "--security-question",
            "Q" * 301,
            "--security-answer",
            "x",
        ],
        ["accounts", "create", "-u", "a" * 255, "-e", "amy@example.org", "-n", "Amy"],
        ["accounts", "create", "-u", "amy", "-e", "a" * 250 + "@example.org", "-n", "Amy"],
        [
            "codes",
            "issue",
            "--tin",
            TIN,
            "--admin-name",
            "J" * 201,
            "--admin-email",
            "j@example.org",
        ],
        [
            "codes",
            "issue",
            "--tin",
            TIN,
            "--admin-name",
            "J",
            "--admin-email",
            "j@example.org",
            "--provider-name",
            "P" * 201,
        ],
        [
            "codes",
            "issue",
            "--tin",
            TIN,
            "--admin-name",
            "J",
            "--admin-email",
            "j@example.org",
            "--org-name",
            "O" * 201,
        ],
        ["accounts", "disable", "--yes", "ann", "--reason", "r" * 501],
        ["tins", "unlink", "-u", "ann", "--tin", TIN, "--reason", "r" * 501],
        ["accounts", "find", "--name", "n" * 300],
    ],
)
def test_an_over_long_value_is_invalid_input_before_any_sql(practice, cli, backend, args):
    before = dump_tables(backend)
    result = cli(*args)
    assert_one_clean_line(result, 5, "portalctl: invalid ")
    assert dump_tables(backend) == before


@pytest.mark.parametrize(
    "args, code",
    [
        (["codes", "show", "99999999999999999999"], 3),
        (["codes", "revoke", "9223372036854775808", "--reason", "x"], 3),
        (["codes", "reissue", "99999999999999999999"], 3),
        (["consolidate", "status", "99999999999999999999"], 3),
        (["--database-url", "postgresql://u@h:port/db", "accounts", "find", "-n", "a"], 5),
        (
            [
                "--database-url",
                "postgresql://u@h:port/db",
                "accounts",
                "lookup",
                "-u",
                "a",
                "--tin",
                TIN,
            ],
            5,
        ),
        (["--database-url", "postgres://u@h:70000/db", "accounts", "find", "-n", "a"], 5),
        (["tins", "link", "-u", "ann", "--tin", TIN, "--code", "12345678", "--role", "user"], 2),
        (["tins", "link", "-u", "ann", "--tin", TIN, "--code", "12345678", "--reason", "x"], 2),
        (["consolidate", "one", "--primary", "ann", "--secondary", "bob", "--tin", ""], 5),
        (["codes", "verify", "--tin", TIN, "--code", "12ab5678"], 5),
        (["codes", "verify", "--tin", TIN, "--code", "1234567"], 5),
        (["accounts", "disable", "--yes", "ann"], 2),
        (["accounts", "disable", "--yes", "ann", "--reason", "   "], 2),
        (["codes", "revoke", "1"], 2),
        (["accounts", "verify", "ann"], 2),
        (["accounts", "verify", "ann", "--answer-stdin"], 2),
    ],
)
def test_exit_codes_agree_with_the_spec(practice, cli, backend, args, code):
    before = dump_tables(backend)
    result = cli(*args)
    assert_one_clean_line(result, code)
    assert dump_tables(backend) == before


def test_a_code_that_cannot_be_one_is_not_counted(practice, cli, backend):
    issued = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        "J",
        "--admin-email",
        "j@example.org",
        "-f",
        "json",
    )
    assert issued.exit_code == 0
    for typed in ("abc", "1234567", "123456789", "１２３４５６７８"):
        assert cli("codes", "verify", "--tin", TIN, "--code", typed).exit_code == 5
    assert backend.scalar("SELECT failed_code_attempts FROM organisations") == 0


def test_reissuing_a_revoked_code_leaves_one_active_code(practice, cli, backend):
    issued = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        "J",
        "--admin-email",
        "j@example.org",
        "-f",
        "json",
    ).json()
    assert cli("codes", "revoke", str(issued["id"]), "--reason", "wrong").exit_code == 0
    assert cli("codes", "reissue", str(issued["id"])).exit_code == 0
    assert cli("codes", "reissue", str(issued["id"])).exit_code == 0
    assert backend.scalar("SELECT COUNT(*) FROM registration_codes WHERE status = 'active'") == 1


@pytest.mark.parametrize("tamper", ["drop", "disable"])
def test_an_unprotected_audit_log_is_reported_and_refuses_writes(
    practice, cli, backend, tmp_path, tamper
):
    if backend.name == "sqlite" and tamper == "disable":
        pytest.skip("SQLite triggers cannot be disabled, only dropped")
    with backend.begin() as connection:
        if backend.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        elif tamper == "drop":
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_update_delete ON audit_log")
        else:
            connection.exec_driver_sql(
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete"
            )
    status = cli("db", "status", "-f", "json").json()
    assert status["audit_log_protected"] is False
    [problem] = status["audit_log_problems"]
    assert problem.startswith("trigger audit_log_no_") and problem.endswith(
        "is missing" if tamper == "drop" else "is disabled"
    )
    before = dump_tables(backend)
    refused = cli("accounts", "disable", "--yes", "ann", "--reason", "x")
    assert_one_clean_line(refused, 6, "portalctl: the audit log is not protected (trigger ")
    path = tmp_path / "c.csv"
    path.write_text(f"tin,admin_name,admin_email\n{TIN},J,j@example.org\n")
    assert cli("codes", "issue", "--csv", str(path)).exit_code == 6
    assert dump_tables(backend) == before
    assert cli("accounts", "find", "--name", "ann").exit_code == 0  # reading still works


def test_db_init_makes_the_database_and_its_key_file_private(bare_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = bare_cli("db", "init", env={"PORTALCTL_DATABASE_URL": url, "PORTALCTL_SECRET_KEY": ""})
    assert result.exit_code == 0, result.stderr
    for name in ("new.db", ".env"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_control_characters_stored_in_a_name_are_shown_escaped(practice, cli, backend):
    with backend.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE accounts SET full_name = 'Ann\x1b]0;owned\x07\x1b[2J' WHERE username = 'ann'"
        )
    for args in (["accounts", "show", "ann"], ["accounts", "find", "--name", "ann"]):
        shown = cli(*args)
        assert shown.exit_code == 0
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
        assert "\\x1b" in shown.stdout


def test_two_creates_of_one_username_at_once_end_as_the_sequential_refusal(backend):
    """Both check, both insert: the loser is refused like a later create (exit 4), with no
    database error and no bound value in sight."""
    import threading

    from portalctl.core.errors import Refused
    from portalctl.domain.account_changes import create_account

    start = threading.Barrier(2)
    outcomes: list[str] = []

    def create(email: str) -> None:
        start.wait()
        try:
            with backend.engine.begin() as connection:
                create_account(
                    connection,
                    operator="rep",
                    username="Dana",
                    email=email,
                    full_name="Dana",
                    tins=[],
                )
                time.sleep(0.3)  # both have checked before either commits
            outcomes.append("created")
        except Refused as refusal:
            outcomes.append(refusal.message)

    threads = [threading.Thread(target=create, args=(f"dana{n}@example.org",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "username 'Dana' is already taken"]
    assert backend.scalar("SELECT COUNT(*) FROM accounts") == 1
