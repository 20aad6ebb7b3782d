"""Core plugins: http (``lanner.core.http.Request``), with httpx.

A response body over ``MAX_INLINE_BODY`` bytes is written to internal storage and the ``body``
output is its ``lanner://`` URI (read it with ``{{ read(outputs.t.body) }}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import httpx
from pydantic import ConfigDict, Field

from common.plugins.base import FlowModel, RunContext, RunnableTask
from common.plugins.dynamic import DynamicBool, DynamicDuration, DynamicIntList, DynamicMap, resolve

from ._support import TaskFailed, worker_context

MAX_INLINE_BODY = 1024 * 1024


class HttpTimeout(FlowModel):
    connect_timeout: DynamicDuration | None = Field(default=None, alias="connectTimeout")
    read_idle_timeout: DynamicDuration | None = Field(default=None, alias="readIdleTimeout")


class HttpOptions(FlowModel):
    """Kestra's ``HttpConfiguration``; options Lanner has no use for are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    timeout: HttpTimeout | DynamicDuration | None = Field(default=None, union_mode="left_to_right")
    connect_timeout: DynamicDuration | None = Field(default=None, alias="connectTimeout")
    read_timeout: DynamicDuration | None = Field(default=None, alias="readTimeout")
    read_idle_timeout: DynamicDuration | None = Field(default=None, alias="readIdleTimeout")
    follow_redirects: DynamicBool = Field(default=True, alias="followRedirects")
    allow_failed: DynamicBool = Field(default=False, alias="allowFailed")
    allowed_response_codes: DynamicIntList | None = Field(
        default=None, alias="allowedResponseCodes"
    )
    basic_auth_user: str | None = Field(default=None, alias="basicAuthUser")
    basic_auth_password: str | None = Field(default=None, alias="basicAuthPassword")
    default_charset: str | None = Field(default="UTF-8", alias="defaultCharset")

    def timeouts(self, render: Callable[[str], Any]) -> httpx.Timeout:
        def seconds(value: timedelta | str | None) -> float | None:
            delta: timedelta | None = resolve(value, render)
            return delta.total_seconds() if delta is not None else None

        connect = seconds(self.connect_timeout)
        read = seconds(self.read_timeout) or seconds(self.read_idle_timeout)
        if isinstance(self.timeout, HttpTimeout):
            connect = connect or seconds(self.timeout.connect_timeout)
            read = read or seconds(self.timeout.read_idle_timeout)
        else:
            read = read or seconds(self.timeout)
        return httpx.Timeout(read or 60.0, connect=connect or 30.0)


class Request(RunnableTask):
    """Sends an HTTP request; outputs ``uri``, ``code``, ``headers`` (name → values), ``body``."""

    TYPE: ClassVar[str] = "lanner.core.http.Request"
    uri: str
    method: str = "GET"
    body: Any = None
    form_data: DynamicMap | None = Field(default=None, alias="formData")
    content_type: str | None = Field(default=None, alias="contentType")
    headers: DynamicMap | None = None
    options: HttpOptions = Field(default_factory=HttpOptions)
    allow_failed: DynamicBool | None = Field(default=None, alias="allowFailed")
    encrypt_body: bool = Field(default=False, alias="encryptBody")
    ssl_options: dict[str, Any] | None = Field(default=None, alias="sslOptions")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = str(ctx.render(self.uri))
        method = str(ctx.render(self.method)).upper()
        render = ctx.render_typed
        rendered = resolve(self.headers, render, items=ctx.render) or {}
        headers = {str(k): str(v) for k, v in rendered.items()}
        content_type = str(ctx.render(self.content_type)) if self.content_type else None
        kwargs: dict[str, Any] = {}
        if self.form_data is not None:
            form = resolve(self.form_data, render, items=ctx.render)
            if content_type and content_type.startswith("multipart/"):
                kwargs["files"] = {k: (None, str(v)) for k, v in form.items()}
            else:
                kwargs["data"] = {k: str(v) for k, v in form.items()}
        elif self.body is not None:
            body = ctx.render(self.body)
            if not isinstance(body, str):
                body = json.dumps(body)
            kwargs["content"] = body.encode()
            headers.setdefault("Content-Type", content_type or "application/json")
        if content_type and "files" not in kwargs:
            headers["Content-Type"] = content_type
        auth = None
        if self.options.basic_auth_user:
            auth = httpx.BasicAuth(
                str(ctx.render(self.options.basic_auth_user)),
                str(ctx.render(self.options.basic_auth_password or "")),
            )
        verify = not bool((self.ssl_options or {}).get("insecureTrustAllCertificates"))
        ctx.log("DEBUG", f"Request {method} {uri}")
        with (
            httpx.Client(
                timeout=self.options.timeouts(render),
                follow_redirects=resolve(self.options.follow_redirects, render),
                verify=verify,
                auth=auth,
            ) as client,
            client.stream(method, uri, headers=headers, **kwargs) as response,
        ):
            data = bytearray()
            stored: str | None = None
            for chunk in response.iter_bytes():
                data.extend(chunk)
            if len(data) > MAX_INLINE_BODY:
                stored = worker_context(ctx).put_data("response.bin", bytes(data))
            charset = response.charset_encoding or self.options.default_charset or "utf-8"
            outputs: dict[str, Any] = {
                "uri": str(response.url),
                "code": response.status_code,
                "headers": {
                    name: response.headers.get_list(name) for name in response.headers.keys()
                },
                "body": stored or bytes(data).decode(charset, errors="replace"),
            }
        allow_failed = resolve(self.allow_failed, render) or resolve(
            self.options.allow_failed, render
        )
        allowed = resolve(self.options.allowed_response_codes, render)
        ok = response.status_code in allowed if allowed else response.status_code < 400
        if not ok and not allow_failed:
            raise TaskFailed(
                f"Failed http request with response code '{response.status_code}'", outputs
            )
        return outputs


PLUGINS: list[type] = [Request]
