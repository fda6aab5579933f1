"""The program as a whole: help with an example on every command, a fast start-up path, the
installed entry points, and the README documenting every command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from portalctl import __version__
from portalctl.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEAVY = ("sqlalchemy", "psycopg", "dotenv")


def all_commands():
    """Every leaf command with its path, through Click's API (groups load lazily)."""

    def walk(command, path):
        if hasattr(command, "list_commands"):
            context = typer.Context(command)
            for name in command.list_commands(context):
                yield from walk(command.get_command(context, name), path + [name])
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), [])


def test_every_command_has_help_with_an_example():
    commands = list(all_commands())
    assert len(commands) >= 13
    for path, command in commands:
        assert command.help and "Example: portalctl " + " ".join(path) in command.help, path


def test_the_command_reference_is_generated_from_the_current_commands():
    from portalctl.cli.reference import reference

    committed = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert committed == reference(), "docs/reference.md is stale: run `make docs`"
    for path, _ in all_commands():
        assert f"## `portalctl {' '.join(path)}`" in committed


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["accounts", "--help"],
        ["accounts", "find", "--help"],
        ["db", "init", "--help"],
    ],
)
def test_help_and_version_import_no_database_or_rendering_library(argv):
    probe = (
        "import sys\n"
        "from portalctl.cli.app import app\n"
        f"try:\n    app({argv!r}, prog_name='portalctl')\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_installed_entry_point_and_python_m_print_the_version():
    for command in (
        [str(BIN / "portalctl"), "--version"],
        [sys.executable, "-m", "portalctl", "--version"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == f"portalctl {__version__}"


def test_installed_program_end_to_end(backend):
    env = {**os.environ, **backend.env}
    run = [str(BIN / "portalctl"), "--operator", "e2e"]
    assert subprocess.run(run + ["db", "init"], env=env, capture_output=True).returncode == 0
    demo = subprocess.run(
        run + ["db", "demo", "--generated", "20"], env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    found = subprocess.run(
        run
        + [
            "accounts",
            "lookup",
            "--username",
            "johnsmith@gmail.com",
            "--tin",
            "836576879",
            "-f",
            "csv",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0 and found.stderr == ""
    assert found.stdout.splitlines()[1].startswith("johnsmith@gmail.com,")
    missing = subprocess.run(
        run + ["accounts", "lookup", "--username", "johnsmith@gmail.com", "--tin", "061137531"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 3 and missing.stdout == ""
    assert "Traceback" not in missing.stderr
    operators = backend.rows("SELECT DISTINCT operator FROM audit_log")
    assert [row["operator"] for row in operators] == ["e2e"]


def _corrupt_a_timestamp(backend) -> None:
    """Data the code cannot read (a timestamp that is not one): a real fault, no mock. SQLite
    stores whatever text it is given; PostgreSQL needs the column made text first."""
    with backend.begin() as connection:
        if backend.name == "postgresql":
            connection.exec_driver_sql(
                "ALTER TABLE accounts ALTER COLUMN created_at TYPE text USING 'not a time'"
            )
        else:
            connection.exec_driver_sql("UPDATE accounts SET created_at = 'not a time'")


def test_an_unexpected_error_is_one_line_exit_1_and_debug_shows_the_traceback(backend):
    env = {**os.environ, **backend.env}
    program = str(BIN / "portalctl")
    created = subprocess.run(
        [program, "accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    _corrupt_a_timestamp(backend)
    plain = subprocess.run(
        [program, "accounts", "show", "amy"], env=env, capture_output=True, text=True
    )
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("portalctl: unexpected error")
    assert "(run with --debug for details)" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [program, "--debug", "accounts", "show", "amy"], env=env, capture_output=True, text=True
    )
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().splitlines()[-1].startswith("portalctl: unexpected error")


def test_an_unsupported_database_is_one_line_exit_5(backend):
    env = {**os.environ, **backend.env, "PORTALCTL_DATABASE_URL": "mysql://x@localhost/db"}
    result = subprocess.run(
        [str(BIN / "portalctl"), "accounts", "find", "-n", "a"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 5 and result.stderr.count("\n") == 1
    assert "unsupported database 'mysql'" in result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_are_generated(shell):
    result = subprocess.run(
        [str(BIN / "portalctl"), "--show-completion", shell], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "_PORTALCTL_COMPLETE" in result.stdout


def test_completion_offers_the_command_groups_and_their_commands():
    env = {
        **os.environ,
        "_PORTALCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "portalctl acc",
        "COMP_CWORD": "1",
    }
    groups = subprocess.run([str(BIN / "portalctl")], env=env, capture_output=True, text=True)
    assert "accounts" in groups.stdout.split()
    env["COMP_WORDS"], env["COMP_CWORD"] = "portalctl accounts ver", "2"
    commands = subprocess.run([str(BIN / "portalctl")], env=env, capture_output=True, text=True)
    assert "verify" in commands.stdout.split()
