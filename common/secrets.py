"""SECRET inputs: encrypted from the moment the API accepts them until a worker renders them.

The execution stores ``lanner:secret:v1:<Fernet token>``, so neither the repository, the API nor
the queue's execution snapshots ever hold the value. A worker decrypts it into the variables of
the task run it runs and masks it in every log line and output. The key is
``LANNER_ENCRYPTION_KEY`` (a Fernet key: ``lanner secret key`` prints a new one); the embedded
server creates one in its data directory on first start.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from common.errors import InputValidationError, LannerError, Problem

PREFIX = "lanner:secret:v1:"
MASK = "********"


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise LannerError(
                "the encryption key is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with `lanner secret key`"
            ) from exc

    def encrypt(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise LannerError(
                "a SECRET input cannot be decrypted: this component's LANNER_ENCRYPTION_KEY "
                "differs from the webserver's"
            ) from exc

    def reveal(self, value: Any, found: set[str]) -> Any:
        """Decrypt every encrypted string inside ``value``; add the plain values to ``found``."""
        if isinstance(value, str) and value.startswith(PREFIX):
            plain = self.decrypt(value)
            found.add(plain)
            return plain
        if isinstance(value, Mapping):
            return {k: self.reveal(v, found) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reveal(v, found) for v in value]
        return value


def new_key() -> str:
    return Fernet.generate_key().decode()


def key_file_key(data_dir: Path) -> str:
    """The embedded server's key: read from ``<data_dir>/encryption.key``, created if missing."""
    path = data_dir / "encryption.key"
    if not path.exists():
        # several components may start at once on one data dir: the key appears whole (written
        # aside, then linked into place), and the first one linked is everyone's key
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, aside = tempfile.mkstemp(prefix=".encryption.key-", dir=data_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key())
            os.chmod(aside, 0o600)
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(aside)
    return path.read_text().strip()


def encrypt_secret_inputs(
    inputs: dict[str, Any], secret_ids: set[str], box: SecretBox | None
) -> dict[str, Any]:
    """Replace the values of SECRET inputs by their encrypted form."""
    present = [i for i in secret_ids if inputs.get(i) not in (None, "")]
    if not present:
        return inputs
    if box is None:
        raise InputValidationError(
            [
                Problem(
                    f"inputs.{i}",
                    "SECRET inputs need an encryption key: set LANNER_ENCRYPTION_KEY on the "
                    "webserver and the workers",
                )
                for i in present
            ]
        )
    out = dict(inputs)
    for input_id in present:
        out[input_id] = box.encrypt(str(inputs[input_id]))
    return out


def mask(value: Any, secrets: set[str]) -> Any:
    """Replace every occurrence of a secret inside strings of ``value`` by ``********``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {k: mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secrets) for v in value]
    return value


def hide_encrypted(value: Any) -> Any:
    """``value`` with every encrypted SECRET input replaced by ``********``: what API answers
    show (the stored execution keeps the encrypted form, which workers decrypt)."""
    if isinstance(value, str):
        return MASK if value.startswith(PREFIX) else value
    if isinstance(value, Mapping):
        return {k: hide_encrypted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_encrypted(v) for v in value]
    return value


def has_encrypted(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(PREFIX)
    if isinstance(value, Mapping):
        return any(has_encrypted(v) for v in value.values())
    if isinstance(value, list):
        return any(has_encrypted(v) for v in value)
    return False
