"""Authentication: users from the configuration, signed API tokens, roles and tenants."""

from __future__ import annotations

from common.auth.config import ALL_TENANTS as ALL_TENANTS
from common.auth.config import ROLES as ROLES
from common.auth.config import AuthSettings as AuthSettings
from common.auth.config import UserConfig as UserConfig
from common.auth.config import role_at_least as role_at_least
from common.auth.store import SqliteTokenStore as SqliteTokenStore
from common.auth.store import TokenStore as TokenStore
from common.auth.tokens import TokenRecord as TokenRecord

__all__ = [
    "ALL_TENANTS",
    "ROLES",
    "AuthSettings",
    "SqliteTokenStore",
    "TokenRecord",
    "TokenStore",
    "UserConfig",
    "role_at_least",
]
