"""Settings from the environment, then a ``.env`` file, with command-line options winning (SPEC 2)."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from portalctl.core.errors import ConfigurationError

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
            return explicit.strip()
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

    def integer(self, name: str, *, minimum: int, maximum: int) -> int:
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
        return self.integer("PORTALCTL_CODE_DIGITS", minimum=6, maximum=12)

    @property
    def code_ttl_days(self) -> int:
        return self.integer("PORTALCTL_CODE_TTL_DAYS", minimum=1, maximum=60)

    @property
    def code_max_attempts(self) -> int:
        return self.integer("PORTALCTL_CODE_MAX_ATTEMPTS", minimum=1, maximum=100)

    @property
    def account_max_failures(self) -> int:
        return self.integer("PORTALCTL_ACCOUNT_MAX_FAILURES", minimum=1, maximum=100)


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

        from_file = dotenv_values(path)
    values: dict[str, str | None] = {}
    for name in SETTING_DEFAULTS:
        if name in os.environ:
            values[name] = os.environ[name]
        elif from_file.get(name) is not None:
            values[name] = from_file[name]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return Settings(values)
