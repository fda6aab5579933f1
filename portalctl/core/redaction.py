"""The last line of defence for text portalctl did not write itself (a driver's error message,
a traceback): anything shaped like a TIN, a code's HMAC, a password hash or an encrypted outbox
secret is masked before it is shown. Messages portalctl writes mask at the source instead."""

from __future__ import annotations

import re

_PATTERNS = (
    (re.compile(r"(?<![0-9])[0-9]{5}([0-9]{4})(?![0-9])"), r"*****\1"),  # a TIN
    (re.compile(r"(?<![0-9])[0-9]{2}-[0-9]{3}([0-9]{4})(?![0-9])"), r"*****\1"),
    (re.compile(r"(?<![0-9])[0-9]{3}-[0-9]{2}-([0-9]{4})(?![0-9])"), r"*****\1"),
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])"), "[hmac]"),
    (re.compile(r"\$argon2[a-z]*\$[^\s'\",)]+"), "[hash]"),
    (re.compile(r"scrypt\$[^\s'\",)]+"), "[hash]"),
    (re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"), "[encrypted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
