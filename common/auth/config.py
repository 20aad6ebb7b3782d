"""The ``auth`` section of the configuration: users (passwords hashed), the token secret.

A plain password in the file is hashed when the configuration loads, with a warning naming the
user (never the password): the process keeps only the hash.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from common.auth.passwords import hash_password, is_hash

log = logging.getLogger("lanner.auth")

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")  # each can do what the previous can
ALL_TENANTS = "*"


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)  # type: ignore[arg-type]


class UserConfig(BaseModel):
    """One user: ``password`` is an argon2 hash once loaded (a plain one is hashed here)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    username: str = Field(min_length=1)
    password: SecretStr
    role: Role = "viewer"
    tenants: list[str] = Field(default_factory=lambda: [ALL_TENANTS])

    @field_validator("password")
    @classmethod
    def _hashed(cls, value: SecretStr, info: object) -> SecretStr:
        plain = value.get_secret_value()
        if is_hash(plain):
            return value
        name = getattr(info, "data", {}).get("username", "?")
        log.warning(
            "auth: the password of user '%s' is in plain text in the configuration; it was "
            "hashed at load time. Store the hash instead (`lanner token hash-password`).",
            name,
        )
        return SecretStr(hash_password(plain))

    def covers(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants


class AuthSettings(BaseModel):
    """``auth:`` of the configuration (``LANNER_AUTH__ENABLED``...). Off by default."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    enabled: bool = False
    # HS256 key of API tokens and UI sessions; required when enabled
    token_secret: SecretStr | None = None
    users: list[UserConfig] = Field(default_factory=list)
    # a UI session (cookie) lasts this long
    session_hours: float = 12.0
    # an API token lasts this long unless its creation says otherwise
    token_days: float = 90.0
    # failed logins (POST /login, Basic) allowed per user name in the window, and 5 times as
    # many per client address; past them: 429 with Retry-After (0: no limit)
    max_failed_logins: int = Field(default=10, ge=0)
    failed_login_window_seconds: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> AuthSettings:
        if self.enabled:
            self.secret()
        return self

    def user(self, username: str) -> UserConfig | None:
        for user in self.users:
            if user.username == username:
                return user
        return None

    def secret(self) -> str:
        if self.token_secret is None or len(self.token_secret.get_secret_value()) < 32:
            raise ValueError(
                "auth.token_secret (LANNER_AUTH__TOKEN_SECRET) must be set to a random string of "
                "at least 32 characters to sign API tokens (e.g. `openssl rand -hex 32`)"
            )
        return self.token_secret.get_secret_value()
