"""``storage.FileTrigger`` watches its flow tenant's folder (``lanner:///<tenant>/<namespace as
folders>/<from>``, issue 13: every entity carries its tenant): a file dropped for one tenant
fires that tenant's trigger only, and each tenant keeps its own memory of the files seen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.models.trigger import WorkerTrigger
from common.plugins.core.storage import FileTrigger
from common.storage.local import LocalStorage
from worker._triggers import PollingRunContext

TRIGGER = {"id": "inbox", "type": "io.kestra.plugin.core.storage.FileTrigger", "from": "inbox/"}


def evaluate(storage: LocalStorage, tenant: str) -> dict[str, Any] | None:
    message = WorkerTrigger(
        tenant_id=tenant,
        namespace="company.team",
        flow_id="watcher",
        trigger=TRIGGER,
        date=datetime.now(UTC),
        variables={"flow": {"id": "watcher", "namespace": "company.team", "tenantId": tenant}},
    )
    ctx = PollingRunContext(message, storage, lambda: datetime.now(UTC))
    return FileTrigger.model_validate(TRIGGER).evaluate(ctx)


def test_each_tenant_watches_its_own_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("lanner:///acme/company/team/inbox/a.csv", b"1\n")
    storage.put("lanner:///company/team/inbox/legacy.csv", b"0\n")  # tenant-less: nobody's
    assert evaluate(storage, "main") is None
    fired = evaluate(storage, "acme")
    assert fired is not None
    assert [f["uri"] for f in fired["files"]] == ["lanner:///acme/company/team/inbox/a.csv"]
    assert evaluate(storage, "acme") is None  # seen, remembered under acme's folder
    assert storage.exists("lanner:///acme/company/team/_lanner/triggers/watcher/inbox/seen.json")
    storage.put("lanner:///main/company/team/inbox/b.csv", b"2\n")
    fired = evaluate(storage, "main")
    assert fired is not None
    assert [f["uri"] for f in fired["files"]] == ["lanner:///main/company/team/inbox/b.csv"]
