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

from common.plugins.base import FlowModel, PollingContext, PollingTrigger, RunContext, RunnableTask
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


def _decoded_body(text: str, content_type: str | None) -> Any:
    """A JSON body as data (``response.body.status``), any other as text."""
    if content_type and "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class Trigger(PollingTrigger):
    """Polls a URL every ``interval`` and starts an execution when ``responseCondition`` holds
    (Kestra's ``io.kestra.plugin.core.http.Trigger``).

    ``responseCondition`` is rendered with ``response.statusCode``, ``response.body`` (data for
    a JSON response, else text) and ``response.headers``; default ``{{ response.statusCode <
    400 }}``. The execution gets ``trigger.uri``, ``trigger.code``, ``trigger.headers`` and
    ``trigger.body``. A request that fails (no answer, timeout) starts nothing and is logged.
    """

    TYPE: ClassVar[str] = "lanner.core.http.Trigger"
    uri: str
    method: str = "GET"
    body: Any = None
    form_data: DynamicMap | None = Field(default=None, alias="formData")
    content_type: str | None = Field(default=None, alias="contentType")
    headers: DynamicMap | None = None
    options: HttpOptions = Field(default_factory=HttpOptions)
    response_condition: str = Field(
        default="{{ response.statusCode < 400 }}", alias="responseCondition"
    )
    interval: str = "PT60S"
    inputs: dict[str, Any] = Field(default_factory=dict)
    ssl_options: dict[str, Any] | None = Field(default=None, alias="sslOptions")
    encrypt_body: bool = Field(default=False, alias="encryptBody")

    def evaluate(self, ctx: PollingContext) -> dict[str, Any] | None:
        from common.templating import render_condition

        uri = str(ctx.render(self.uri))
        method = str(ctx.render(self.method)).upper()
        render = ctx.render_typed
        rendered = resolve(self.headers, render, items=ctx.render) or {}
        headers = {str(k): str(v) for k, v in rendered.items()}
        kwargs: dict[str, Any] = {}
        content_type = str(ctx.render(self.content_type)) if self.content_type else None
        if self.form_data is not None:
            form = resolve(self.form_data, render, items=ctx.render)
            kwargs["data"] = {k: str(v) for k, v in form.items()}
        elif self.body is not None:
            body = ctx.render(self.body)
            kwargs["content"] = (body if isinstance(body, str) else json.dumps(body)).encode()
            headers.setdefault("Content-Type", content_type or "application/json")
        if content_type:
            headers["Content-Type"] = content_type
        auth = None
        if self.options.basic_auth_user:
            auth = httpx.BasicAuth(
                str(ctx.render(self.options.basic_auth_user)),
                str(ctx.render(self.options.basic_auth_password or "")),
            )
        timeout = self.options.timeouts(render)
        # an evaluation must answer before its lock expires: the request never waits longer
        left = max(0.5, ctx.seconds_left())
        timeout = httpx.Timeout(
            min(timeout.read or left, left), connect=min(timeout.connect or left, left)
        )
        verify = not bool((self.ssl_options or {}).get("insecureTrustAllCertificates"))
        try:
            with httpx.Client(
                timeout=timeout,
                follow_redirects=resolve(self.options.follow_redirects, render),
                verify=verify,
                auth=auth,
            ) as client:
                response = client.request(method, uri, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            ctx.log("WARN", f"Request {method} {uri} failed: {type(exc).__name__}: {exc}")
            return None
        charset = response.charset_encoding or self.options.default_charset or "utf-8"
        text = response.content.decode(charset, errors="replace")
        body_value = _decoded_body(text, response.headers.get("content-type"))
        headers_out = {name: response.headers.get_list(name) for name in response.headers.keys()}
        variables = {
            **ctx.variables,
            "response": {
                "statusCode": response.status_code,
                "body": body_value,
                "headers": headers_out,
            },
        }
        if not render_condition(self.response_condition, variables):
            ctx.log(
                "DEBUG",
                f"{method} {uri}: {response.status_code}, responseCondition false: no execution",
            )
            return None
        return {
            "uri": str(response.url),
            "code": response.status_code,
            "headers": headers_out,
            "body": body_value,
        }


PLUGINS: list[type] = [Request, Trigger]
