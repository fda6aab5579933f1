"""A rep at a terminal: ``portalctl flow consolidate`` run by the installed program in a
pseudo-terminal (Python's ``pty``), answered as a person would, prompt by prompt. The guide's
pages appear in order, what the rep types is echoed, and the secrets (the security answer, the
email code, the password) are not."""

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from credentials_support import PASSWORD, code_in, eml_messages
from flow_support import ANSWER, EXISTING, OLD, TIN_SHARED, seed_000

PORTALCTL = str(Path(sys.executable).with_name("portalctl"))
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _take_the_terminal() -> None:
    """In the child, a session leader: the pseudo-terminal becomes its controlling terminal, so
    Ctrl-C there is SIGINT, as at a person's terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """The program on a pseudo-terminal: what it has shown so far, and a way to type."""

    def __init__(self, args, env):
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_take_the_terminal,
        )
        os.close(slave)
        self.shown = ""
        self.read_up_to = 0  # where the next prompt is looked for

    def wait_for(self, text, timeout=30.0):
        deadline = time.monotonic() + timeout
        while text not in self.shown[self.read_up_to :]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; the terminal shows:\n{self.shown}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the program ended and closed the terminal
                    chunk = b""
                assert chunk, f"ended before {text!r}:\n{self.shown}"
                self.shown += chunk.decode(errors="replace").replace("\r\n", "\n")
        self.read_up_to = self.shown.index(text, self.read_up_to) + len(text)

    def answer(self, prompt, text):
        self.wait_for(prompt)
        os.write(self.master, text.encode() + b"\n")

    def finish(self, last="Thank You", timeout=30.0):
        self.wait_for(last, timeout)
        code = self.process.wait(timeout)
        try:
            while select.select([self.master], [], [], 0.2)[0]:
                chunk = os.read(self.master, 4096)
                if not chunk:
                    break
                self.shown += chunk.decode(errors="replace").replace("\r\n", "\n")
        except OSError:
            pass
        os.close(self.master)
        return code


def test_a_rep_at_a_terminal_sees_the_guides_steps_and_no_secret(cli, backend):
    seed_000(cli)
    terminal = Terminal([PORTALCTL, "flow", "consolidate"], {**os.environ, **backend.env})
    terminal.answer("Username *: ", OLD)
    terminal.answer("Tax ID Number *: ", TIN_SHARED)
    terminal.answer("What's your maiden name? *: ", ANSWER)
    terminal.answer("Email *: ", EXISTING)
    terminal.answer("Verify Email *: ", EXISTING)
    terminal.wait_for("Security Code Verification")
    code = code_in(eml_messages(backend)[-1])
    terminal.answer("Verification Code *: ", code)
    terminal.answer("Username *: ", EXISTING)
    terminal.answer("Password *: ", PASSWORD)
    terminal.answer("(yes/no): ", "yes")
    assert terminal.finish() == 0, terminal.shown
    shown = terminal.shown
    pages = [
        "Provider Portal - Existing User - Consolidating Existing Accounts",
        "Account Lookup",
        f"Username *: {OLD}\n",  # typed, and echoed
        f"Tax ID Number *: {TIN_SHARED}\n",
        "Account Verification",
        "Email Address Verification",
        f"Verify Email *: {EXISTING}\n",
        "Security Code Verification",
        "Verify Username and Password",
        "will be merged into",
        "Thank You",
    ]
    positions = [shown.find(page) for page in pages]
    assert -1 not in positions and positions == sorted(positions), (positions, shown)
    assert "\noutcome " in shown and shown.rstrip().endswith("*****6879 (user)")
    for secret in (ANSWER, code, PASSWORD):
        assert secret not in shown
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "merged"


def test_ctrl_c_at_a_terminal_prompt_ends_the_flow_with_exit_130(cli, backend):
    seed_000(cli)
    terminal = Terminal([PORTALCTL, "flow", "consolidate"], {**os.environ, **backend.env})
    terminal.answer("Username *: ", OLD)
    terminal.answer("Tax ID Number *: ", TIN_SHARED)
    terminal.wait_for("What's your maiden name? *: ")
    os.write(terminal.master, b"\x03")
    assert terminal.finish("nothing was changed beyond its audited checks") == 130
    assert "interrupted: nothing was changed" in terminal.shown
    assert "outcome      cancelled" in terminal.shown
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "active"
