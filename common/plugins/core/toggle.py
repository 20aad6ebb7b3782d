"""Core plugin ``lanner.core.trigger.Toggle`` (Kestra's ``io.kestra.plugin.core.trigger.Toggle``):
enable or disable a trigger of a flow.

It runs on a worker and, like the API, never writes the trigger's state: it sends a request that
the scheduler owning the trigger applies at its next tick (``common.trigger_requests``). The
worker has no flow catalog, so a flow or trigger that does not exist is reported by the
scheduler (a WARN log of the trigger) rather than by failing the task.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from common.plugins.base import RunContext, RunnableTask

from ._support import TaskFailed


class Toggle(RunnableTask):
    """Enable (``enabled: true``) or disable a trigger; ``namespace`` and ``flowId`` default to
    the current flow's."""

    TYPE: ClassVar[str] = "lanner.core.trigger.Toggle"
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    trigger: str = Field(min_length=1)
    enabled: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from common.trigger_requests import new_request

        flow = ctx.variables.get("flow") or {}
        execution = ctx.variables.get("execution") or {}
        namespace = str(ctx.render(self.namespace) if self.namespace else flow.get("namespace"))
        flow_id = str(ctx.render(self.flow_id) if self.flow_id else flow.get("id"))
        trigger_id = str(ctx.render(self.trigger)).strip()
        if not trigger_id:
            raise TaskFailed("`trigger` rendered empty: name the trigger to toggle")
        request = new_request(
            str(flow.get("tenantId") or "main"),
            namespace,
            flow_id,
            trigger_id,
            datetime.now(UTC),
            disabled=not self.enabled,
            source=f"task:{execution.get('id', '')}",
        )
        ctx.send_trigger_request(request)
        ctx.log(
            "INFO",
            f"{'Enabling' if self.enabled else 'Disabling'} trigger '{trigger_id}' of "
            f"{namespace}.{flow_id}",
        )
        return {}


PLUGINS: list[type] = [Toggle]
