"""Log lines for cron (``core/logs.py``): UTC ISO time, level, command, message; one line per
event whatever the message holds, TINs masked; the handler is installed once."""

import logging
import re

from portalctl.core.logs import (
    LogLineFormatter,
    configure_stderr_logging,
    get_logger,
    mask_tin_shaped,
)


def _line(message, *, name="portalctl.mail.send", level=logging.WARNING, created=0.0):
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.created = created
    return LogLineFormatter().format(record)


def test_a_line_has_utc_time_level_command_and_message():
    assert _line("sent=1", created=1_800_000_000.5) == (
        "2027-01-15T08:00:00Z WARNING mail send: sent=1"
    )


def test_line_breaks_and_control_characters_cannot_forge_a_second_line():
    line = _line("reason=550 no\r\n2027-01-15T08:00:00Z INFO mail send: sent=999\x1b[2J")
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\\r\\n2027" in line and "\\x1b[2J" in line


def test_tins_are_masked_in_any_of_their_forms():
    assert mask_tin_shaped("tin 061137531, 06-1137531 or 061-13-7531") == (
        "tin *****7531, *****7531 or *****7531"
    )
    assert mask_tin_shaped("emails=12345678 id=1234567890") == "emails=12345678 id=1234567890"
    assert "061137531" not in _line("for 061137531")


def test_the_stderr_handler_is_installed_once(capsys):
    first = configure_stderr_logging()
    second = configure_stderr_logging()
    assert first is second
    assert logging.getLogger("portalctl").handlers.count(first) == 1
    get_logger("mail send").info("sent=3")
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO mail send: sent=3\n", err), err
