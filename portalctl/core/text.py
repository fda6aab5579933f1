"""How user-supplied text is shown: on one line, with control and escape characters made
visible, so a stored name or a typed value can neither break a log line nor drive a terminal."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """Control characters (ESC, CR, LF, NUL, C1...) as ``\\x1b``-style escapes; the rest as is."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def has_controls(text: str) -> bool:
    return _CONTROL.search(text) is not None


def without_line_breaks(text: str) -> str:
    """CR and LF as spaces: what the audit log and log lines do to a value (SPEC 1)."""
    return text.replace("\r", " ").replace("\n", " ")


def collapse_spaces(text: str) -> str:
    """Runs of whitespace (line breaks included) become one space; ends trimmed."""
    return " ".join(text.split())


def quoted(value: object, *, limit: int = 60) -> str:
    """A value as an error message echoes it: quoted, escaped, shortened past ``limit``."""
    text = escape_controls(str(value))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "'" + text + "'"
