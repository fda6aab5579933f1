"""Driving a guided flow without a terminal, as a rep's script would: each answer is one line of
stdin, produced only when the flow reads it, so an email code can be read out of the message
that has just been delivered (as the caller reads it out on the phone).

``typer.testing.CliRunner`` takes its stdin as a finished string; ``flow_runner`` hands it a
stream whose lines are computed as they are read instead, and is otherwise the ``cli`` fixture.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable

import typer.testing
from conftest import CliResult
from credentials_support import PASSWORD, code_in, eml_messages
from typer.testing import CliRunner

from portalctl.cli.app import app

Answer = str | Callable[[], str]
ANSWER = "Smith"
PIN = "4821"
OLD, EXISTING = "jsmith_old", "johnsmith@gmail.com"
OLD_EMAIL = "john.smith@smithfamilypractice.example"
TIN_OLD, TIN_SHARED = "223456781", "836576879"
ADMIN_EMAIL = "james.smith@goneh-practice.example"
NEW_TIN = "061137531"


class AnswersAsRead(io.RawIOBase):
    """stdin whose next line is made when the program reads it: a string, or a function
    called then (to read the code out of the email just delivered, or to press Ctrl-C)."""

    def __init__(self, answers: Iterable[Answer]):
        self.answers = list(answers)
        self.pending = b""
        self.read_count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pending:
            if not self.answers:
                return 0
            answer = self.answers.pop(0)
            self.read_count += 1
            self.pending = ((answer() if callable(answer) else answer) + "\n").encode()
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def flow_runner(backend, monkeypatch):
    """``run(*args, answers=[...])``: ``portalctl ARGS`` in-process with those answers on
    stdin, read one line at a time (a test module's ``flow_cli`` fixture returns it)."""
    make_stream = typer.testing.make_input_stream

    def make_input_stream(given, charset):
        if isinstance(given, AnswersAsRead):
            return io.BufferedReader(given, buffer_size=1)
        return make_stream(given, charset)

    monkeypatch.setattr(typer.testing, "make_input_stream", make_input_stream)
    runner = CliRunner()

    def run(*args: str, answers: Iterable[Answer] = (), env: dict[str, str] | None = None):
        result = runner.invoke(
            app,
            list(args),
            input=AnswersAsRead(answers),
            env={**backend.env, **(env or {})},
            catch_exceptions=False,
        )
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def last_json(stdout: str) -> dict:
    """The one object that ends stdout."""
    return json.loads(stdout[stdout.rindex("\n{") + 1 :] if "\n{" in stdout else stdout)


def emailed_code(backend, server=None) -> Callable[[], str]:
    """The code of the latest email, read when the flow asks for it: from the SMTP server's
    inbox, or from the newest ``.eml`` file in PORTALCTL_MAIL_DIR."""

    def read() -> str:
        return code_in(server.handler.received[-1] if server else eml_messages(backend)[-1])

    return read


def create(cli, username, email, *tins, answer=None, pin=None, password=PASSWORD):
    """An active account holding ``tins`` (``TIN:role``), with the password, and the seed's
    security question when ``answer`` is given, and a PIN."""
    args = ["accounts", "create", "-u", username, "-e", email, "-n", "John Smith"]
    for tin in tins:
        args += ["--tin", tin]
    stdin = password + "\n"
    if answer is not None:
        args += ["--security-question", "What's your maiden name?", "--answer-stdin"]
        stdin = answer + "\n" + stdin
    result = cli(*args, "--password-stdin", input=stdin)
    assert result.exit_code == 0, result.stderr
    if pin is not None:
        result = cli("accounts", "set-security", username, "--pin-stdin", input=pin + "\n")
        assert result.exit_code == 0, result.stderr


def seed_000(cli):
    """The caller's old account (security question, PIN) and their existing account."""
    create(cli, OLD, OLD_EMAIL, f"{TIN_OLD}:user", f"{TIN_SHARED}:user", answer=ANSWER, pin=PIN)
    create(cli, EXISTING, EXISTING, f"{TIN_SHARED}:security_admin")


def registration_code(cli, tin=NEW_TIN) -> str:
    """A registration code for ``tin`` issued to James Smith (its email not sent)."""
    result = cli(
        "codes",
        "issue",
        "--tin",
        tin,
        "--admin-name",
        "James Smith",
        "--admin-email",
        ADMIN_EMAIL,
        "--provider-name",
        "Ruth Goneh",
        "--no-email",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()["code"]


def verify_by(cli, backend, method, username=OLD):
    """One successful check of ``method`` through its single command."""
    if method == "security_answer":
        result = cli("accounts", "verify", username, "--answer", ANSWER.lower())
    elif method == "pin":
        result = cli("accounts", "verify", username, "--pin-stdin", input=PIN + "\n")
    elif method == "password":
        result = cli("accounts", "verify", username, "--password-stdin", input=PASSWORD + "\n")
    elif method == "email_code":
        sent = cli("accounts", "email-code", username, "--email", OLD_EMAIL)
        assert sent.exit_code == 0, sent.stderr
        code = code_in(eml_messages(backend)[-1])
        result = cli("accounts", "confirm-email", username, "--code", code)
    else:
        code = registration_code(cli)
        result = cli("codes", "verify", "--tin", "061137531", "--code", code)
    assert result.exit_code == 0, result.stderr
    return result


def flow_records(backend, flow_id: str) -> list[dict]:
    """The audit records of one flow, in the order written."""
    return [
        dict(row)
        for row in backend.rows(
            "SELECT action, account, flow_id FROM audit_log WHERE flow_id = :f ORDER BY id",
            f=flow_id,
        )
    ]
