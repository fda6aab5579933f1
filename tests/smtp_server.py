"""A real SMTP server on loopback (aiosmtpd) whose answers a test chooses."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScriptedHandler:
    """Accepts messages, or answers with the next scripted reply: a reply line such as
    ``"451 4.3.0 try later"``, ``"drop"`` (close the connection), or ``"hang"`` (keep the
    message, touch ``signal_file`` and never answer)."""

    def __init__(self, script: list[str] | None = None, signal_file: Path | None = None):
        self.script = list(script or [])
        self.signal_file = signal_file
        self.received: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.connections = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            step = self.script.pop(0) if self.script else "250 OK"
        if step == "drop":
            server.transport.close()
            return "421 closing"
        message = email.message_from_bytes(envelope.content)
        if step == "hang":
            with self.lock:
                self.received.append(message)
            self.signal_file.write_text("accepted")
            await asyncio.sleep(3600)
        if step.startswith("250"):
            with self.lock:
                self.received.append(message)
                self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return step


class SmtpServer:
    def __init__(self, handler: ScriptedHandler):
        self.handler = handler
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
