"""The Tax ID value type: parsing, validation, normalisation and masking in one place.

``str(tin)`` is the masked form, so any output path that forgets to think about TINs still masks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portalctl.core.errors import InvalidInput
from portalctl.core.text import quoted

_ACCEPTED = re.compile(r"\d{9}|\d{2}-\d{7}|\d{3}-\d{2}-\d{4}")


@dataclass(frozen=True, slots=True)
class Tin:
    """Nine digits identifying a provider organisation (EIN or SSN)."""

    digits: str

    def __post_init__(self) -> None:
        if not (len(self.digits) == 9 and self.digits.isdigit() and self.digits.isascii()):
            raise InvalidInput(
                f"invalid TIN {quoted(mask_text(self.digits))}: expected nine digits"
            )
        if self.digits == "000000000":
            raise InvalidInput("invalid TIN: 000000000 is not a Tax ID")

    @classmethod
    def parse(cls, text: str) -> Tin:
        """Accept ``061137531``, ``06-1137531`` or ``061-13-7531`` (surrounding spaces ignored)."""
        tin = object.__new__(cls)  # validated by parse_tin_digits: skip __post_init__'s check
        object.__setattr__(tin, "digits", parse_tin_digits(text))
        return tin

    @property
    def masked(self) -> str:
        return mask_tin(self.digits)

    def reveal(self) -> str:
        return self.digits

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Tin({self.masked!r})"


def parse_tin_digits(text: str) -> str:
    """The nine digits of a TIN as typed (the rules of ``Tin.parse``), without making a ``Tin``:
    bulk imports parse millions."""
    if not isinstance(text, str):
        raise InvalidInput("invalid TIN: expected text")
    candidate = text.strip()
    if not _ACCEPTED.fullmatch(candidate) or not candidate.isascii():
        raise InvalidInput(
            f"invalid TIN {quoted(mask_text(candidate))}: use 9 digits, "
            "as 123456789, 12-3456789 or 123-45-6789"
        )
    digits = candidate.replace("-", "")
    if digits == "000000000":
        raise InvalidInput("invalid TIN: 000000000 is not a Tax ID")
    return digits


MASK_PREFIX = "*****"


def mask_tin(digits: str) -> str:
    """``061137531`` -> ``*****7531``."""
    return MASK_PREFIX + digits[-4:]


def masked_tin_sql(column: str) -> str:
    """The SQL expression of ``mask_tin`` over a nine-digit TIN column, for records that
    set-based statements build (audit details, messages); NULL stays NULL."""
    return f"'{MASK_PREFIX}' || substr({column}, 6, 4)"


def mask_text(text: str) -> str:
    """Mask a possibly-invalid TIN for an error message: keep only the last four characters."""
    if len(text) <= 4:
        return text
    return "*" * min(len(text) - 4, 12) + text[-4:]
