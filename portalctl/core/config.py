"""Settings from the environment, then a ``.env`` file, with command-line options winning (SPEC 2)."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from portalctl.core.errors import ConfigurationError, InvalidInput
from portalctl.core.fields import clean_text

DEFAULT_DATABASE_URL = "sqlite:///portal.db"

# Every setting portalctl reads, with its default; the README lists the same names.
SETTING_DEFAULTS: dict[str, str | None] = {
    "PORTALCTL_DATABASE_URL": DEFAULT_DATABASE_URL,
    "PORTALCTL_SECRET_KEY": None,
    "PORTALCTL_OPERATOR": None,
    "PORTALCTL_SMTP_URL": None,
    "PORTALCTL_MAIL_FROM": "ConnectiCare Provider Portal <no-reply@provider.connecticare.com>",
    "PORTALCTL_MAIL_DIR": "outbox-mail",
    "PORTALCTL_CODE_DIGITS": "8",
    "PORTALCTL_CODE_TTL_DAYS": "14",
    "PORTALCTL_CODE_MAX_ATTEMPTS": "5",
    "PORTALCTL_ACCOUNT_MAX_FAILURES": "5",
    "PORTALCTL_EMAIL_CODE_DIGITS": "6",
    "PORTALCTL_EMAIL_CODE_TTL_MINUTES": "15",
    "PORTALCTL_EMAIL_CODE_MAX_PER_HOUR": "5",
    "PORTALCTL_VERIFICATION_WINDOW_MINUTES": "30",
    "PORTALCTL_MAIL_MAX_ATTEMPTS": "8",
    "PORTALCTL_MAIL_LEASE_SECONDS": "600",
    "PORTALCTL_MAIL_CHUNK_SIZE": "100",
    "PORTALCTL_MAIL_MAX_SECONDS": "240",
    "PORTALCTL_SMTP_TIMEOUT_SECONDS": "30",
    "PORTALCTL_INSURER_NAME": "ConnectiCare",
    "PORTALCTL_INSURER_ADDRESS": "175 Scott Swamp Road | Farmington, CT 06032",
    "PORTALCTL_PORTAL_URL": "provider.connecticare.com",
    "PORTALCTL_COMMERCIAL_PHONES": "860-674-5850 or 800-828-3407",
    "PORTALCTL_MEDICARE_PHONE": "877-224-8230",
}


# The bounds of every whole-number setting; an option that overrides one for a single command
# (``codes issue --ttl-days``) is checked against the same bounds by ``check_range``.
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "PORTALCTL_CODE_DIGITS": (6, 12),
    "PORTALCTL_CODE_TTL_DAYS": (1, 60),
    "PORTALCTL_CODE_MAX_ATTEMPTS": (1, 100),
    "PORTALCTL_ACCOUNT_MAX_FAILURES": (1, 100),
    "PORTALCTL_EMAIL_CODE_DIGITS": (6, 10),
    "PORTALCTL_EMAIL_CODE_TTL_MINUTES": (1, 1440),
    "PORTALCTL_EMAIL_CODE_MAX_PER_HOUR": (1, 100),
    "PORTALCTL_VERIFICATION_WINDOW_MINUTES": (1, 1440),
    "PORTALCTL_MAIL_MAX_ATTEMPTS": (1, 100),
    "PORTALCTL_MAIL_LEASE_SECONDS": (1, 86_400),
}


def check_range(name: str, value: int, *, what: str) -> int:
    """``value`` if it is within the bounds of the setting ``name``, else invalid input naming
    ``what`` (the option or column it came from)."""
    minimum, maximum = SETTING_RANGES[name]
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{what} must be between {minimum} and {maximum}, not {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """The resolved configuration for one run of portalctl."""

    values: dict[str, str | None] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name, SETTING_DEFAULTS.get(name))

    @property
    def database_url(self) -> str:
        return self.get("PORTALCTL_DATABASE_URL") or DEFAULT_DATABASE_URL

    @property
    def operator(self) -> str:
        explicit = self.get("PORTALCTL_OPERATOR")
        if explicit and explicit.strip():
            return clean_text(explicit, "operator") or "unknown"
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    @property
    def secret_key(self) -> bytes:
        key = self.get("PORTALCTL_SECRET_KEY")
        if not key or len(key.strip()) < 16:
            raise ConfigurationError(
                "PORTALCTL_SECRET_KEY is not set (or shorter than 16 characters); "
                "set it in the environment or in .env (`portalctl db init` creates one for a new "
                "embedded database)"
            )
        return key.strip().encode()

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """A whole-number setting within its bounds (``SETTING_RANGES``, unless given)."""
        if minimum is None or maximum is None:
            minimum, maximum = SETTING_RANGES[name]
        raw = self.get(name)
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigurationError(f"{name} must be between {minimum} and {maximum}, not {value}")
        return value

    @property
    def code_digits(self) -> int:
        return self.integer("PORTALCTL_CODE_DIGITS")

    @property
    def code_ttl_days(self) -> int:
        return self.integer("PORTALCTL_CODE_TTL_DAYS")

    @property
    def code_max_attempts(self) -> int:
        return self.integer("PORTALCTL_CODE_MAX_ATTEMPTS")

    @property
    def account_max_failures(self) -> int:
        return self.integer("PORTALCTL_ACCOUNT_MAX_FAILURES")

    @property
    def email_code_digits(self) -> int:
        return self.integer("PORTALCTL_EMAIL_CODE_DIGITS")

    @property
    def email_code_ttl_minutes(self) -> int:
        return self.integer("PORTALCTL_EMAIL_CODE_TTL_MINUTES")

    @property
    def email_code_max_per_hour(self) -> int:
        return self.integer("PORTALCTL_EMAIL_CODE_MAX_PER_HOUR")

    @property
    def verification_window_minutes(self) -> int:
        return self.integer("PORTALCTL_VERIFICATION_WINDOW_MINUTES")


# Settings that may instead be read from a file named by the same variable with _FILE appended
# (the container-secrets convention); the variable itself wins when both are set.
SECRET_SETTINGS = ("PORTALCTL_SECRET_KEY", "PORTALCTL_DATABASE_URL", "PORTALCTL_SMTP_URL")


def _read_secret_file(variable: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not valid UTF-8"
        raise ConfigurationError(f"{variable}: {path} cannot be read ({reason})") from None


def load_settings(
    *, env_file: Path | None = None, overrides: dict[str, str | None] | None = None
) -> Settings:
    """Environment first, then the ``.env`` file for what the environment leaves unset; options win."""
    path = env_file if env_file is not None else Path(".env")
    if env_file is not None and not env_file.is_file():
        raise ConfigurationError(f"--env-file {env_file}: no such file")
    from_file: dict[str, str | None] = {}
    if path.is_file():
        from dotenv import dotenv_values  # only when there is a file to read: start-up time

        try:
            from_file = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not valid UTF-8"
            raise ConfigurationError(f"{path}: cannot be read ({reason})") from None
    values: dict[str, str | None] = {}
    for name in SETTING_DEFAULTS:
        if name in os.environ:
            values[name] = os.environ[name]
        elif from_file.get(name) is not None:
            values[name] = from_file[name]
        elif name in SECRET_SETTINGS:
            secret_file = os.environ.get(f"{name}_FILE") or from_file.get(f"{name}_FILE")
            if secret_file:
                values[name] = _read_secret_file(f"{name}_FILE", Path(secret_file))
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return Settings(values)
