"""Server-sent events: the event format the live views (``webserver._live``) send."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import StreamingResponse

# a stream without news sends a keepalive comment this often (seconds), so that a gone client is
# noticed on the next write and its stream ends
POLL_SECONDS = 1.0
KEEPALIVE = ": keepalive\n\n"


def sse_event(data: Any, event: str | None = None) -> str:
    """One ``data: {json}`` event (Kestra sends unnamed events)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


class EventStream(StreamingResponse):
    """The ``response_class`` of the live routes: the OpenAPI document names their media type."""

    media_type = "text/event-stream"
