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
    message, touch ``signal_file`` and never answer). ``delay`` seconds pass before each DATA
    answer (a slow server); ``rcpt`` maps a recipient to the reply its RCPT gets."""

    def __init__(
        self,
        script: list[str] | None = None,
        signal_file: Path | None = None,
        *,
        delay: float = 0.0,
        rcpt: dict[str, str] | None = None,
    ):
        self.script = list(script or [])
        self.signal_file = signal_file
        self.delay = delay
        self.rcpt = dict(rcpt or {})
        self.received: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.connections = 0
        self.lock = threading.Lock()

    def message_ids(self) -> list[str]:
        with self.lock:
            return [message["Message-ID"] for message in self.received]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
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


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1 and localhost, made now."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portalctl test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class SmtpServer:
    """``tls="smtps"``: TLS from the first byte; ``tls="starttls"``: STARTTLS offered and
    required (both with ``certificate``'s key pair)."""

    def __init__(
        self,
        handler: ScriptedHandler,
        *,
        tls: str | None = None,
        certificate: tuple[Path, Path] | None = None,
    ):
        self.handler = handler
        self.port = free_port()
        self.tls = tls
        options = {}
        if tls:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            options = (
                {"ssl_context": context}
                if tls == "smtps"
                else {"tls_context": context, "require_starttls": True}
            )
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **options)

    @property
    def url(self) -> str:
        if self.tls == "smtps":
            return f"smtps://127.0.0.1:{self.port}"
        suffix = "?starttls=true" if self.tls == "starttls" else ""
        return f"smtp://127.0.0.1:{self.port}{suffix}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class RawSmtpServer:
    """A bare SMTP server on a loopback socket for the session-level faults aiosmtpd will not
    stage: a chosen greeting, AUTH refused, MAIL FROM refused, or silence. ``replies`` overrides
    the answer to a command (``"greeting"``, ``"EHLO"``, ``"AUTH"``, ``"MAIL"``, ``"RCPT"``,
    ``"DATA"``, ``"."`` for the end of a message); ``"hang"`` means never answer. It counts
    connections and accepted messages."""

    DEFAULTS = {
        "greeting": "220 raw.test ESMTP",
        "EHLO": "250-raw.test\r\n250 AUTH PLAIN LOGIN",
        "HELO": "250 raw.test",
        "AUTH": "235 2.7.0 accepted",
        "MAIL": "250 OK",
        "RCPT": "250 OK",
        "DATA": "354 go ahead",
        ".": "250 OK queued",
        "RSET": "250 OK",
        "NOOP": "250 OK",
        "QUIT": "221 bye",
    }

    def __init__(self, **replies: str):
        self.replies = {**self.DEFAULTS, **replies}
        if "end" in replies:
            self.replies["."] = self.replies.pop("end")
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.messages = 0
        self.commands: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _answer(self, connection, key: str) -> bool:
        reply = self.replies[key]
        if reply == "hang":
            self.stopping.wait(120)
            return False
        connection.sendall(reply.encode() + b"\r\n")
        return True

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _session(self, connection) -> None:
        with connection, connection.makefile("rb") as lines:
            if not self._answer(connection, "greeting"):
                return
            in_data = False
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if in_data:
                    if line == ".":
                        in_data = False
                        if self.replies["."].startswith("250"):
                            self.messages += 1
                        if not self._answer(connection, "."):
                            return
                    continue
                verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
                self.commands.append(verb)
                key = verb if verb in self.replies else None
                if key is None:
                    connection.sendall(b"502 not implemented\r\n")
                    continue
                if not self._answer(connection, key):
                    return
                if verb == "DATA" and self.replies["DATA"].startswith("354"):
                    in_data = True
                if verb == "QUIT":
                    return

    def __enter__(self) -> RawSmtpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(5)
