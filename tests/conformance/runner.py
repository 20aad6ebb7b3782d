"""Runs one conformance manifest entry against a live Lanner API and lists what differs.

Everything goes through the HTTP API (`/api/v1`), as a user's script would: deploy flows,
create executions (inputs as multipart form fields, FILE inputs as uploads), poll them until
they reach the awaited state, read their logs and search the executions a case spawned
(subflow children, flow-trigger executions, CREATE_NEW_EXECUTION retries).

``kestra:///`` in expected values is our ``lanner:///main/``: Kestra's URIs carry no tenant
(its storage adds the tenant below the URI), Lanner's put it first
(``/{tenant}/{namespace as path}/{flowId}/executions/{id}/inputs/{input}/{file}``) and the
scenarios run in the default tenant ``main``; so expectations are translated, never the
product's outputs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.conformance.checks import _lookup, check_execution, matches, select, substitute
from tests.conformance.manifest import CONFORMANCE_DIR, flow_source, input_file
from tests.infra.waiting import WaitTimeout, wait_until

Json = dict[str, Any]

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED"}
T = TypeVar("T")
POLL_SECONDS = 0.1


def _poll(predicate: Callable[[], T], timeout: float, what: str) -> T:
    return wait_until(predicate, timeout, what, interval=POLL_SECONDS)


# After an execution ended, its logs and spawned executions reach the repository through the
# indexer: a failing check is retried for this long before it is reported.
SETTLE_SECONDS = 3.0


BARRIER_NAMESPACE = "lanner.conformance"
BARRIER_ID = "barrier"
BARRIER_FLOW = f"""\
id: {BARRIER_ID}
namespace: {BARRIER_NAMESPACE}
tasks:
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


class CaseError(Exception):
    """The scenario could not go on (an API call failed, a wait timed out)."""


def flow_key(file: str) -> tuple[str, str]:
    data = yaml.safe_load(flow_source(file))
    return str(data["namespace"]), str(data["id"])


def kestra_to_lanner(value: Any) -> Any:
    """``kestra:///x`` → ``lanner:///main/x`` in expected values (see the module docstring)."""
    if isinstance(value, str):
        return value.replace("kestra:///", "lanner:///main/")
    if isinstance(value, list):
        return [kestra_to_lanner(v) for v in value]
    if isinstance(value, dict):
        return {k: kestra_to_lanner(v) for k, v in value.items()}
    return value


class Api:
    """The few API calls the scenarios need, with errors turned into ``CaseError``."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        response = self.client.request(method, "/api/v1" + path, **kw)
        if response.status_code not in ok:
            raise CaseError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def deploy(self, source: str) -> None:
        headers = {"content-type": "application/x-yaml"}
        response = self.client.post("/api/v1/flows", content=source, headers=headers)
        if response.status_code == 409:
            data = yaml.safe_load(source)
            response = self.client.put(
                f"/api/v1/flows/{data['namespace']}/{data['id']}", content=source, headers=headers
            )
        if response.status_code != 200:
            raise CaseError(f"deploy: HTTP {response.status_code} {response.text[:500]}")

    def create(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None,
        labels: Mapping[str, Any] | None = None,
        schedule_date: str | None = None,
    ) -> Json:
        params: list[tuple[str, str]] = [("labels", f"{k}:{v}") for k, v in (labels or {}).items()]
        if schedule_date is not None:
            params.append(("scheduleDate", schedule_date))
        parts = [form_part(k, v) for k, v in (inputs or {}).items()]
        return dict(
            self._call(
                "POST",
                f"/executions/{namespace}/{flow_id}",
                params=params,
                files=parts or None,
            )
        )

    def execution(self, execution_id: str) -> Json:
        return dict(self._call("GET", f"/executions/{execution_id}"))

    def logs(self, execution_id: str) -> list[Json]:
        return list(self._call("GET", f"/logs/{execution_id}"))

    def search(self, namespace: str, flow_id: str) -> list[Json]:
        found = self._call(
            "GET",
            "/executions/search",
            params={"namespace": namespace, "flowId": flow_id, "size": 1000, "sort": "x:asc"},
        )
        return list(found["results"])

    def wait(self, execution_id: str, until: Callable[[Json], bool], timeout: float) -> Json:
        last: Json = {}

        def reached() -> bool:
            response = self.client.get(f"/api/v1/executions/{execution_id}")
            if response.status_code != 200:
                return False
            last.clear()
            last.update(response.json())
            return until(last)

        try:
            _poll(reached, timeout, f"execution {execution_id}")
        except WaitTimeout:
            state = last.get("state", {}).get("current")
            raise CaseError(f"execution {execution_id} still {state} after {timeout:g}s") from None
        return last

    def wait_terminal(self, execution_id: str, timeout: float) -> Json:
        return self.wait(execution_id, lambda ex: ex["state"]["current"] in TERMINAL, timeout)


def form_part(input_id: str, value: Any) -> tuple[str, tuple[str | None, bytes | str]]:
    """One multipart part: ``@file:`` / ``@content:`` become uploads, the rest text fields."""
    if isinstance(value, str) and value.startswith("@file:"):
        path = input_file(value[len("@file:") :])
        return input_id, (path.name, path.read_bytes())
    if isinstance(value, str) and value.startswith("@content:"):
        return input_id, (f"{input_id}.txt", value[len("@content:") :].encode())
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value)
    else:
        text = str(value)
    return input_id, (None, text)


_PHASE = re.compile(r"^phase\[(\d+)\]\.execution\.id$")
_CHILD_SPEC_KEYS = ("file",)


@dataclass
class CaseRun:
    """The state of one scenario: the executions each phase made, named refs, problems."""

    api: Api
    entry: Json
    timeout: float
    problems: list[str] = field(default_factory=list)
    phase_ids: list[str | None] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    # (file, execution id) of every execution a phase handled, in order
    seen: list[tuple[str, str]] = field(default_factory=list)
    child_id: str | None = None
    started: float = field(default_factory=time.time)

    # -------------------------------------------------------------- helpers
    @property
    def file(self) -> str:
        return str(self.entry["file"])

    def lookup(self, name: str) -> str:
        m = _PHASE.match(name)
        if m:
            found = self.phase_ids[int(m.group(1))]
            if found is None:
                raise CaseError(f"phase {m.group(1)} made no execution")
            return found
        if name == "child.execution.id":
            if self.child_id is None:
                raise CaseError("no child execution found")
            return self.child_id
        raise CaseError(f"unknown placeholder ${{{name}}}")

    def check(self, ex: Json, spec: Json, where: str, settle: bool = True) -> Json:
        """Checks ``ex`` against ``spec``; a failure is retried (re-reading the execution and its
        logs) for ``SETTLE_SECONDS`` in case the repository lags behind."""
        spec = kestra_to_lanner(spec)
        current = [ex]
        found: list[str] = []

        def passes() -> bool:
            if found:  # a previous try failed: read the execution again
                current[0] = self.api.execution(ex["id"])
            found.clear()
            logs = (
                self.api.logs(ex["id"]) if "expect_logs" in spec or "expect_no_logs" in spec else []
            )
            try:
                check_execution(current[0], spec, logs, self.lookup, found, where=where)
            except (CaseError, AssertionError, KeyError, IndexError) as exc:
                found.append(f"{where}check error: {exc!r}")
            return not found

        try:
            _poll(passes, SETTLE_SECONDS if settle else 0, f"{where}expectations")
        except WaitTimeout:
            pass  # the problems of the last try are the case's
        self.problems.extend(found)
        return current[0]

    def inputs_for(self, spec: Json, file: str) -> Mapping[str, Any] | None:
        if "inputs" in spec:
            return dict(substitute(spec["inputs"], self.lookup))
        if file == self.file:
            return self.entry.get("inputs")
        return None

    def labels_for(self, file: str) -> Mapping[str, Any] | None:
        return self.entry.get("execution_labels") if file == self.file else None

    def create(self, spec: Json, file: str) -> Json:
        namespace, flow_id = flow_key(file)
        schedule = spec.get("schedule_date")
        if schedule is not None:
            m = re.fullmatch(r"now\+(\d+)s", str(schedule))
            if not m:
                raise CaseError(f"unsupported schedule_date {schedule!r}")
            when = time.time() + int(m.group(1))
            schedule = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + (
                f".{int(when * 1000) % 1000:03d}Z"
            )
        ex = self.api.create(
            namespace,
            flow_id,
            self.inputs_for(spec, file),
            self.labels_for(file),
            schedule,
        )
        self.seen.append((file, ex["id"]))
        return ex

    def target(self, spec: Json) -> tuple[str, str]:
        name = str(spec["target"])
        m = re.fullmatch(r"phase\[(\d+)\]", name)
        found = self.phase_ids[int(m.group(1))] if m else self.refs.get(name)
        if found is None:
            raise CaseError(f"unknown await target {name}")
        file = next((f for f, i in self.seen if i == found), self.file)
        return file, found

    def current(self) -> tuple[str, str]:
        if not self.seen:
            raise CaseError("no execution yet")
        return self.seen[-1]

    def triggered(self, file: str) -> list[Json]:
        """Executions of ``file`` triggered by this scenario's executions (directly or through
        other triggered ones): those of earlier scenarios on the same server do not count."""
        namespace, flow_id = flow_key(file)
        family = {execution_id for _, execution_id in self.seen}
        candidates = [ex for ex in self.api.search(namespace, flow_id) if ex.get("trigger")]
        found: list[Json] = []
        grew = True
        while grew:
            grew = False
            for ex in candidates:
                parent = ((ex.get("trigger") or {}).get("variables") or {}).get("executionId")
                if ex["id"] not in family and parent in family:
                    family.add(ex["id"])
                    found.append(ex)
                    grew = True
        return found

    # -------------------------------------------------------------- phases
    def run(self) -> None:
        phases = self.entry.get("phases")
        if not phases:
            ex = self.create(self.entry, self.file)
            self.api.wait_terminal(ex["id"], self.timeout)
        else:
            for index, phase in enumerate(phases):
                where = f"phase[{index}] {phase['do']}: "
                made = self.phase(phase, where)
                self.phase_ids.append(made)
                if made is not None and "ref" in phase:
                    self.refs[str(phase["ref"])] = made
        self.final_checks()

    def phase(self, spec: Json, where: str) -> str | None:
        verb = spec["do"]
        timeout = float(spec.get("within_seconds", self.timeout))
        file = str(spec.get("file", self.file))
        if verb in ("run", "start", "run_until"):
            ex = self.create(spec, file)
            until = spec.get("until")
            if until is None:
                ex = self.api.wait_terminal(ex["id"], timeout)
            else:
                ex = self.api.wait(ex["id"], _state_is(str(until)), timeout)
            self.check(ex, spec, where, settle=until is None)
            return str(ex["id"])
        if verb == "create":
            ex = self.create(spec, file)
            self.check(ex, spec, where, settle=False)
            return str(ex["id"])
        if verb in ("wait", "await"):
            file, execution_id = self.target(spec) if verb == "await" else self.current()
            ex = self.api.wait_terminal(execution_id, timeout)
            self.seen.append((file, execution_id))
            self.check(ex, spec, where)
            return execution_id
        if verb == "resume":
            file, execution_id = self.current()
            form = [form_part(k, v) for k, v in (spec.get("resume_inputs") or {}).items()]
            self.api._call("POST", f"/executions/{execution_id}/resume", files=form or None)
            ex = self.api.wait_terminal(execution_id, timeout)
            self.seen.append((file, execution_id))
            self.check(ex, spec, where)
            return execution_id
        if verb == "kill":
            file, execution_id = self.current()
            self.api._call("DELETE", f"/executions/{execution_id}/kill", ok=(200, 202))
            ex = self.api.wait_terminal(execution_id, timeout)
            self.seen.append((file, execution_id))
            self.check(ex, spec, where)
            return execution_id
        if verb == "restart":
            file, execution_id = self.current()
            before = self.api.execution(execution_id)
            answer = self.api._call("POST", f"/executions/{execution_id}/restart")
            self.check_changed(before, answer, spec.get("expect_restarted") or {}, where)
            ex = self.api.wait_terminal(answer["id"], timeout)
            self.seen.append((file, answer["id"]))
            self.check(ex, spec, where)
            return str(answer["id"])
        if verb == "replay":
            file, execution_id = self.current()
            before = self.api.execution(execution_id)
            params = {}
            if "from_task" in spec:
                params["taskRunId"] = select(before, str(spec["from_task"]))["id"]
            answer = self.api._call("POST", f"/executions/{execution_id}/replay", params=params)
            self.check_changed(before, answer, spec.get("expect_replayed") or {}, where)
            ex = self.api.wait_terminal(answer["id"], timeout)
            self.seen.append((file, answer["id"]))
            self.check(ex, spec, where)
            return str(answer["id"])
        if verb == "await_triggered":
            return self.await_triggered(spec, file, timeout, where)
        if verb == "assert_not_triggered":
            # a barrier instead of waiting `for_seconds`: an execution created now ends, and is
            # indexed, after every input the executor had when it was created (the embedded
            # queue delivers them in offset order), so a trigger would be visible by then
            self.barrier(timeout)
            found = self.triggered(file)
            if found:
                self.problems.append(f"{where}{file} was triggered: {[e['id'] for e in found]}")
            return None
        if verb == "webhook":
            return self.webhook(spec, where)
        raise CaseError(f"unknown phase verb {verb!r}")

    def barrier(self, timeout: float) -> None:
        self.api.deploy(BARRIER_FLOW)
        created = self.api.create(BARRIER_NAMESPACE, BARRIER_ID, None)
        self.api.wait_terminal(str(created["id"]), timeout)

    def await_triggered(self, spec: Json, file: str, timeout: float, where: str) -> str | None:
        count = int(spec.get("count", 1))
        wanted = spec.get("first_with_state")
        found: list[Json] = []
        done: list[Json] = []

        def enough() -> bool:
            found[:] = self.triggered(file)
            done[:] = [
                e
                for e in found
                if (
                    e["state"]["current"] == wanted
                    if wanted is not None
                    else e["state"]["current"] in TERMINAL
                )
            ]
            return len(done) >= count

        try:
            _poll(enough, timeout, f"{file} triggered")
        except WaitTimeout:
            states = [e["state"]["current"] for e in found]
            raise CaseError(f"{where}{file}: {len(done)} of {count} triggered ({states})") from None
        done.sort(key=lambda e: e["state"]["startDate"])
        ex = done[0]
        self.seen.append((file, ex["id"]))
        if count > 1:
            self.check_each(done[:count], spec, where)
        else:
            self.check(ex, spec, where)
        return str(ex["id"])

    def check_each(self, found: list[Json], spec: Json, where: str) -> None:
        for index, state in enumerate(spec.get("expect_each_state") or []):
            if found[index]["state"]["current"] != state:
                self.problems.append(f"{where}#{index} state {found[index]['state']['current']}")
        for index, outputs in enumerate(spec.get("expect_flow_outputs_in_order") or []):
            if found[index].get("outputs") != outputs:
                self.problems.append(f"{where}#{index} outputs {found[index].get('outputs')}")
        rest = {k: v for k, v in spec.items() if k not in ("expect_each_state",)}
        for ex in found:
            self.check(ex, rest, where)

    def webhook(self, spec: Json, where: str) -> str | None:
        kwargs: dict[str, Any] = {}
        if "body" in spec:
            kwargs["json"] = spec["body"]
        elif "body_text" in spec:
            kwargs["content"] = str(spec["body_text"]).encode()
            kwargs["headers"] = {"content-type": "text/plain"}
        response = self.api.client.request(str(spec["method"]), str(spec["path"]), **kwargs)
        status = int(spec.get("expect_http_status", 200))
        if response.status_code != status:
            self.problems.append(f"{where}HTTP {response.status_code} != {status}")
            return None
        if "expect_body_contains" in spec and spec["expect_body_contains"] not in response.text:
            self.problems.append(
                f"{where}body {response.text[:300]!r} lacks {spec['expect_body_contains']!r}"
            )
        if status != 200:
            return None
        ex = response.json()
        self.seen.append((self.file, ex["id"]))
        self.check(ex, spec, where, settle=False)
        return str(ex["id"])

    def check_changed(self, before: Json, after: Json, spec: Json, where: str) -> None:
        """``expect_restarted`` / ``expect_replayed``: the execution the API answered with."""
        fail = self.problems.append
        runs = after.get("taskRunList") or []
        if spec.get("same_execution_id") and after["id"] != before["id"]:
            fail(f"{where}restart changed the id {before['id']} -> {after['id']}")
        if spec.get("new_execution_id") and after["id"] == before["id"]:
            fail(f"{where}the id did not change")
        if "parent_id" in spec:
            want = substitute(spec["parent_id"], lambda n: _lookup(n, before, self.lookup))
            if after.get("parentId") != want:
                fail(f"{where}parentId {after.get('parentId')} != {want}")
        if "state" in spec and after["state"]["current"] != spec["state"]:
            fail(f"{where}answered state {after['state']['current']} != {spec['state']}")
        if "state_history_size" in spec:
            size = len(after["state"].get("histories") or [])
            if size != spec["state_history_size"]:
                fail(f"{where}state history size {size} != {spec['state_history_size']}")
        if "taskrun_count" in spec and len(runs) != spec["taskrun_count"]:
            fail(f"{where}answered {len(runs)} task runs != {spec['taskrun_count']}")
        for selector, state in (spec.get("task_states") or {}).items():
            actual = select(after, str(selector))["state"]["current"]
            if actual != state:
                fail(f"{where}answered {selector} state {actual} != {state}")
        for selector, n in (spec.get("attempts") or {}).items():
            actual = len(select(after, str(selector)).get("attempts") or [])
            if not matches(actual, n):
                fail(f"{where}answered {selector} attempts {actual} != {n}")
        for state, n in (spec.get("taskrun_states_count_gt") or {}).items():
            count = sum(1 for t in runs if t["state"]["current"] == state)
            if not count > n:
                fail(f"{where}{count} task runs {state}, want > {n}")

    # -------------------------------------------------------------- end of the scenario
    def main_execution(self) -> str | None:
        for file, execution_id in reversed(self.seen):
            if file == self.file:
                return execution_id
        return None

    def final_checks(self) -> None:
        main = self.main_execution()
        if main is None:
            return
        ex = self.api.wait_terminal(main, self.timeout)
        parent_lookup: Callable[[str], str] = lambda name: _lookup(name, ex, self.lookup)  # noqa: E731
        children = self.entry.get("children") or (
            [self.entry["child"]] if "child" in self.entry else []
        )
        known = {main}
        found_children: list[tuple[Json, Json]] = []
        for spec in children:
            child = self.find_child(str(spec["file"]), known)
            known.add(child["id"])
            found_children.append((spec, child))
            if self.child_id is None:
                self.child_id = str(child["id"])
        top = {k: v for k, v in self.entry.items() if k not in ("phases", "child", "children")}
        if self.entry.get("phases"):
            # the last phase already checked its own expectations on this execution
            top = {k: v for k, v in top.items() if k.startswith("expect_")}
        self.check(ex, top, "")
        for spec, child in found_children:
            # ${execution.id} in a child's expectations names the parent execution
            resolved = substitute(spec, parent_lookup)
            done = self.api.wait_terminal(child["id"], self.timeout)
            self.check(done, resolved, f"child {spec['file']}: ")
        if "expect_flow_execution_states" in self.entry:
            self.check_flow_states()

    def find_child(self, file: str, parents: set[str]) -> Json:
        namespace, flow_id = flow_key(file)

        def child() -> Json | None:
            for ex in self.api.search(namespace, flow_id):
                variables = (ex.get("trigger") or {}).get("variables") or {}
                if variables.get("executionId") in parents:
                    return ex
            return None

        try:
            return _poll(child, self.timeout, f"a child of {sorted(parents)}")
        except WaitTimeout:
            raise CaseError(f"no execution of {file} started by {sorted(parents)}") from None

    def check_flow_states(self) -> None:
        expected = self.entry["expect_flow_execution_states"]
        want = len(expected.get("in_any_order", [])) if isinstance(expected, dict) else 0
        namespace, flow_id = flow_key(self.file)
        states: list[str] = []

        def settled() -> bool:
            states[:] = [e["state"]["current"] for e in self.api.search(namespace, flow_id)]
            return all(s in TERMINAL for s in states) and len(states) >= want

        try:
            _poll(settled, self.timeout, f"executions of {flow_id} to end")
        except WaitTimeout:
            pass  # compared as they are
        if not matches(states, expected):
            self.problems.append(f"executions of {flow_id}: states {states} != {expected}")


def _state_is(state: str) -> Callable[[Json], bool]:
    def until(ex: Json) -> bool:
        current = ex["state"]["current"]
        if current != state and current in TERMINAL:
            raise CaseError(f"execution {ex['id']} ended {current} before reaching {state}")
        return bool(current == state)

    return until


def flow_files() -> list[Path]:
    return sorted(p for p in (CONFORMANCE_DIR / "flows").iterdir() if p.suffix in (".yml", ".yaml"))
