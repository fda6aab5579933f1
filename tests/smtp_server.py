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
