"""Response headers built from user data."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Response


def attachment(filename: str) -> str:
    """``Content-Disposition`` of a download named ``filename`` (RFC 6266): an ASCII fallback
    name plus the UTF-8 one, so that no name (an id from the URL, a file's name) breaks the
    header's latin-1 encoding or its quoting."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class OctetStream(Response):
    """The ``response_class`` of a binary download: the OpenAPI document names its media type."""

    media_type = "application/octet-stream"
