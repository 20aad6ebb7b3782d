"""Base classes of every model that crosses a process boundary."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

SCHEMA_VERSION = 1


class WireModel(BaseModel):
    """A JSON message between components.

    camelCase on the wire (Kestra's API and topics), snake_case in Python. Unknown fields are
    ignored so that a newer component's messages are readable during a rolling upgrade.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        ser_json_timedelta="iso8601",
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Message(WireModel):
    """A queue message: carries ``schemaVersion`` so readers can refuse what they do not know."""

    KIND: ClassVar[str] = "message"
    schema_version: int = SCHEMA_VERSION
