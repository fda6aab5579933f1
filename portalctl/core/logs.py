"""Log lines for runs nobody watches (cron): one timestamped line per event, on stderr.

Code that runs unattended logs through ``get_logger(command)``; the program installs the one
stderr handler with ``configure_stderr_logging()`` when stderr is not a terminal (a person at a
terminal gets messages and the rendered summary instead). Until then the ``portalctl`` logger
has only a ``NullHandler``, so nothing leaks out through logging's last-resort handler.

A line is ``2026-11-22T02:00:03Z WARNING mail send: ...``: the UTC time, the level, the command
and the message, sanitised as SPEC section 1 asks of logs: control characters (CR and LF
included) escaped so one event stays one line, and anything shaped like a TIN masked. Codes and
secrets are never passed to a logger in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

from portalctl.core.text import escape_controls
from portalctl.core.tin import mask_tin

ROOT_LOGGER = "portalctl"
LINE_FORMAT = "%(asctime)s %(levelname)s %(command)s: %(message)s"
_TIN_SHAPED = re.compile(r"(?<![\d-])(\d{9}|\d{2}-\d{7}|\d{3}-\d{2}-\d{4})(?![\d-])")

logging.getLogger(ROOT_LOGGER).addHandler(logging.NullHandler())


def get_logger(command: str) -> logging.Logger:
    """The logger of a command, e.g. ``get_logger("mail send")``; its lines name the command."""
    return logging.getLogger(f"{ROOT_LOGGER}.{command.replace(' ', '.')}")


def mask_tin_shaped(text: str) -> str:
    """Nine digits (or 12-3456789, 123-45-6789) as ``*****6789``, wherever they appear."""
    return _TIN_SHAPED.sub(lambda match: mask_tin(match.group().replace("-", "")), text)


class LogLineFormatter(logging.Formatter):
    """One sanitised line per record, timestamped in UTC (ISO 8601, ``Z``)."""

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def format(self, record: logging.LogRecord) -> str:
        record.command = record.name.removeprefix(ROOT_LOGGER).lstrip(".").replace(".", " ")
        record.exc_info = record.exc_text = None  # a traceback would span lines
        return escape_controls(mask_tin_shaped(super().format(record)))


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_handler: logging.Handler | None = None


def configure_stderr_logging(level: int = logging.INFO) -> logging.Handler:
    """Install the stderr handler on the ``portalctl`` logger (once; later calls only set the
    level) and return it."""
    global _handler
    root = logging.getLogger(ROOT_LOGGER)
    if _handler is None:
        _handler = _CurrentStderrHandler()
        _handler.setFormatter(LogLineFormatter())
        root.addHandler(_handler)
        root.propagate = False
    root.setLevel(level)
    _handler.setLevel(level)
    return _handler
