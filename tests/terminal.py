"""Running the real program on a pseudo-terminal, as a person at a keyboard would, and reading
what they would see (stdin, stdout and stderr all on the terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

PORTALCTL = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "portalctl")


def run_in_terminal(
    args: list[str], env: dict[str, str], *, answers: list[str] = (), timeout: float = 60
) -> tuple[int, str]:
    """(exit code, everything the terminal showed). Each answer is typed once the program has
    printed something new (a prompt) since the last one."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [PORTALCTL, *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env, "COLUMNS": "120"},
        close_fds=True,
    )
    os.close(follower)
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
            if pending and chunk.rstrip().endswith((b":", b"?", b"]", b")")):
                os.write(leader, pending.pop(0).encode() + b"\r")
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(leader)
    return process.returncode, shown.decode("utf-8", "replace")
