"""How a message leaves: over SMTP (one connection for the run) or as an ``.eml`` file.

A sender tells apart the two kinds of failure the outbox must treat differently (SPEC 1):
a refusal of *this message* (a reply to its RCPT or DATA) is returned as a ``Rejection``, for
the message to be marked ``failed`` or ``dead``; a failure of *the server* (connection, TLS,
greeting, login, the sender address refused, no answer in time) raises
``MailServerUnavailable``, which stops the run without charging any message for it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from portalctl.core.errors import ConfigurationError, MailServerUnavailable
from portalctl.core.text import escape_controls


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for the wire: envelope and bytes (CRLF line ends)."""

    message_id: str
    envelope_from: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class Rejection:
    """The server refused this one message; ``permanent`` for a 5xx (the email is dead)."""

    permanent: bool
    reason: str


class Sender(Protocol):
    def send(self, message: OutgoingMessage, *, until: float) -> Rejection | None:
        """Hand over one message, finishing by ``until`` (``time.monotonic()``)."""

    def close(self) -> None: ...


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return escape_controls(f"{code} {' '.join(text.split())}")[:300]


@dataclass(frozen=True)
class SmtpTarget:
    """``PORTALCTL_SMTP_URL`` taken apart and checked; ``str()`` never shows the password."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def encrypted(self) -> bool:
        return self.scheme == "smtps" or self.starttls


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str) -> SmtpTarget:
    """Refuses (exit 2) a malformed URL, and credentials that would cross the network in clear:
    a user or password needs ``smtps://`` or ``?starttls=true``, unless the host is loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigurationError("PORTALCTL_SMTP_URL must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError("PORTALCTL_SMTP_URL has an invalid port") from None
    if not parts.hostname:
        raise ConfigurationError("PORTALCTL_SMTP_URL names no host")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ConfigurationError(f"PORTALCTL_SMTP_URL: unknown option {unknown[0]!r}")
    flag = query.get("starttls", ["false"])[-1].lower()
    if flag not in ("true", "false"):
        raise ConfigurationError("PORTALCTL_SMTP_URL: starttls must be true or false")
    target = SmtpTarget(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=flag == "true",
    )
    if target.scheme == "smtps" and target.starttls:
        raise ConfigurationError("PORTALCTL_SMTP_URL: smtps:// is TLS already; drop ?starttls")
    if (target.username or target.password) and not (target.encrypted or _is_loopback(target.host)):
        raise ConfigurationError(
            f"PORTALCTL_SMTP_URL carries a password for {target} without TLS: "
            "use smtps:// or ?starttls=true (plain smtp:// logins only to a loopback host)"
        )
    return target


class _TimedSMTP(smtplib.SMTP):
    """Every command waits at most ``command_timeout`` and never past ``until``, so one message
    cannot outlive the run's lease or deadline, however slowly the server answers."""

    until: float = math.inf
    command_timeout: float = 30.0
    _host: str  # set by smtplib's __init__ only; TLS checks the certificate against it

    def _arm(self) -> None:
        if self.sock is not None:
            left = self.until - time.monotonic()
            if left <= 0:
                raise TimeoutError("no time left for this message")
            self.sock.settimeout(min(self.command_timeout, left))

    def send(self, s: bytes | str) -> None:  # type: ignore[override]
        self._arm()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        self._arm()
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected as error:
            # smtplib reports a read that timed out as a disconnection; it is a server that
            # does not answer, not a message it dropped.
            if isinstance(error.__context__, TimeoutError):
                raise TimeoutError("no answer in time") from error
            raise


class _TimedSMTPSSL(smtplib.SMTP_SSL, _TimedSMTP):
    pass


class SmtpSender:
    """One SMTP connection for the whole run, opened on first use (and again after a message's
    connection was dropped)."""

    def __init__(self, target: SmtpTarget, *, command_timeout: float):
        self.target = target
        self.command_timeout = command_timeout
        self.client: _TimedSMTP | None = None

    def _unavailable(self, what: str) -> MailServerUnavailable:
        self.close()
        return MailServerUnavailable(f"the mail server at {self.target} {what}")

    def _connect(self, until: float) -> _TimedSMTP:
        # The default context checks the certificate and the host name (a private CA: OpenSSL's
        # SSL_CERT_FILE). STARTTLS that the server does not offer is an error, never a fall-back
        # to plain text.
        tls = ssl.create_default_context()
        timeout = max(0.01, min(self.command_timeout, until - time.monotonic()))
        client: _TimedSMTP = (
            _TimedSMTPSSL(timeout=timeout, context=tls)
            if self.target.scheme == "smtps"
            else _TimedSMTP(timeout=timeout)
        )
        client.until, client.command_timeout = until, self.command_timeout
        client._host = self.target.host
        self.client = client
        code, reply = client.connect(self.target.host, self.target.port)
        if code != 220:
            raise self._unavailable(f"refused the connection: {_reply(code, reply)}")
        client.ehlo_or_helo_if_needed()
        if self.target.starttls:
            client.starttls(context=tls)
            client.ehlo()
        if self.target.username or self.target.password:
            client.login(self.target.username or "", self.target.password or "")
        return client

    def _open(self, until: float) -> _TimedSMTP:
        try:
            return self._connect(until)
        except MailServerUnavailable:
            raise
        except smtplib.SMTPAuthenticationError as error:
            raise self._unavailable(
                f"refused the login: {_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError as error:
            raise self._unavailable(f"does not offer what is needed: {error}") from None
        except smtplib.SMTPResponseException as error:
            raise self._unavailable(
                f"refused the session: {_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except TimeoutError:
            raise self._unavailable(f"did not answer within {self.command_timeout:g} s") from None
        except ssl.SSLError as error:
            raise self._unavailable(f"failed the TLS handshake: {error}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise self._unavailable(f"cannot be reached: {error}") from None

    def send(self, message: OutgoingMessage, *, until: float) -> Rejection | None:
        client = self.client or self._open(until)
        client.until = until
        try:
            client.sendmail(message.envelope_from, [message.recipient], message.data)
        except smtplib.SMTPSenderRefused as error:
            if error.smtp_code == 552:  # the SIZE given with MAIL FROM: this message is too big
                return Rejection(True, _reply(error.smtp_code, error.smtp_error))
            raise self._unavailable(
                f"refused the sender {message.envelope_from}: "
                f"{_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients.get(message.recipient, (0, b"refused"))
            return self._rejection(code, text)
        except smtplib.SMTPDataError as error:
            return self._rejection(error.smtp_code, error.smtp_error)
        except smtplib.SMTPServerDisconnected as error:
            # Mid-message the outcome is unknown; the message is retried later, and the next
            # one reconnects (a server that is really gone then stops the run).
            self.close()
            return Rejection(False, f"connection dropped: {error or 'no reply'}")
        except TimeoutError:
            left = until - time.monotonic()
            waited = "before the run's time ran out" if left <= 0.05 else "in time"
            raise self._unavailable(f"did not answer {waited}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise self._unavailable(f"failed: {error}") from None
        return None

    def _rejection(self, code: int, text: bytes | str) -> Rejection:
        if code == 421:  # "service not available, closing the channel": the server, not us
            raise self._unavailable(f"is closing: {_reply(code, text)}")
        return Rejection(500 <= code < 600, _reply(code, text))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.until = time.monotonic() + 1.0
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


class FileSender:
    """Each message as ``<message-id>.eml`` in ``PORTALCTL_MAIL_DIR``: readable by its owner
    only (0600 in a 0700 folder, created so from the start), since it holds the plain code.
    For development or a hand-off to another mail system, not production."""

    def __init__(self, directory: str):
        self.directory = Path(directory)
        self._ready = False

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            if self.directory.stat().st_mode & 0o077:
                self.directory.chmod(0o700)  # a folder made before files held codes privately
        self._ready = True

    def send(self, message: OutgoingMessage, *, until: float) -> Rejection | None:
        name = message.message_id.strip("<>").replace("@", "_at_").replace("/", "_") + ".eml"
        target = self.directory / name
        partial = self.directory / f".{name}.{os.getpid()}.partial"
        try:
            if not self._ready:
                self._prepare()
            partial.unlink(missing_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            descriptor = os.open(partial, flags, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(message.data)
            os.replace(partial, target)
        except OSError as error:
            raise MailServerUnavailable(
                f"cannot write to PORTALCTL_MAIL_DIR {self.directory}: {error.strerror or error}"
            ) from None
        return None

    def close(self) -> None:
        pass
