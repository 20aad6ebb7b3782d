"""Checks an execution (as the API returns it: JSON) against a conformance manifest entry.

Selectors, matchers and placeholders are those of ../shared/conformance/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]

_SELECTOR = re.compile(r"^(?P<task>[^\[#.]+)(?P<values>(\[[^\]]*\])*)$")


def _parents(ex: Json, tr: Json) -> list[Json]:
    by_id = {t["id"]: t for t in ex.get("taskRunList", [])}
    out = []
    cur = tr
    while cur.get("parentTaskRunId") in by_id:
        cur = by_id[cur["parentTaskRunId"]]
        out.append(cur)
    out.reverse()
    return out


def values_path(ex: Json, tr: Json) -> list[str]:
    return [t["value"] for t in [*_parents(ex, tr), tr] if t.get("value") is not None]


def select(ex: Json, selector: str) -> Json:
    runs = ex.get("taskRunList", [])
    if selector.startswith("#"):
        return runs[int(selector[1:])]
    m = _SELECTOR.match(selector)
    if not m:
        raise AssertionError(f"bad selector {selector}")
    task = m.group("task")
    values = re.findall(r"\[([^\]]*)\]", m.group("values") or "")
    for tr in runs:
        if tr["taskId"] != task:
            continue
        if values and values_path(ex, tr) != values:
            continue
        return tr
    raise AssertionError(f"no task run for selector {selector!r}")


def split_selector_path(key: str) -> tuple[str, list[str]]:
    """``1-2-2_return[s1][a a].value`` → (``1-2-2_return[s1][a a]``, [``value``])."""
    if key.startswith("#"):
        head, _, rest = key.partition(".")
        return head, rest.split(".") if rest else []
    depth = 0
    for i, ch in enumerate(key):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "." and depth == 0:
            return key[:i], key[i + 1 :].split(".")
    return key, []


def dig(value: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(value, dict):
            if part not in value:
                raise AssertionError(f"missing key {part!r} in {value!r}")
            value = value[part]
        elif isinstance(value, list):
            value = value[int(part)]
        else:
            raise AssertionError(f"cannot read {part!r} of {value!r}")
    return value


def output_value(ex: Json, key: str) -> Any:
    selector, path = split_selector_path(key)
    tr = select(ex, selector)
    return dig(tr.get("outputs") or {}, path)


def substitute(value: Any, lookup: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(lookup(m.group(1))), value)
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    return value


def _norm(value: Any) -> Any:
    return value


_MATCHERS = {
    "contains",
    "startswith",
    "matches",
    "has_items",
    "in_any_order",
    "any_of",
    "gte",
    "not_null",
    "equals",
    "not_equals",
    "iso_datetime_within_seconds_of_now",
}


def matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict) and not (len(expected) == 1 and set(expected) <= _MATCHERS):
        # a map of expectations: every expected key matches (matchers may be nested)
        return (
            isinstance(actual, dict)
            and set(actual) == set(expected)
            and all(matches(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, dict) and len(expected) == 1:
        ((op, arg),) = expected.items()
        if op == "contains":
            return (
                isinstance(actual, str | list | dict)
                and str(arg) in (actual if isinstance(actual, str) else str(actual))
                if isinstance(actual, str)
                else arg in actual
            )
        if op == "startswith":
            return isinstance(actual, str) and actual.startswith(arg)
        if op == "matches":
            return isinstance(actual, str) and re.fullmatch(arg, actual) is not None
        if op == "has_items":
            return isinstance(actual, list) and all(any(_eq(a, x) for a in actual) for x in arg)
        if op == "in_any_order":
            return isinstance(actual, list) and sorted(map(str, actual)) == sorted(map(str, arg))
        if op == "any_of":
            return any(matches(actual, x) for x in arg)
        if op == "gte":
            return actual is not None and float(actual) >= float(arg)
        if op == "not_null":
            return actual is not None
        if op == "equals":
            return _eq(actual, arg)
        if op == "not_equals":
            return not _eq(actual, arg)
        if op == "iso_datetime_within_seconds_of_now":
            when = datetime.fromisoformat(str(actual).replace("Z", "+00:00"))
            return abs((datetime.now(UTC) - when).total_seconds()) <= float(arg)
    return _eq(actual, expected)


def _eq(actual: Any, expected: Any) -> bool:
    if actual == expected:
        return True
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(actual) == float(expected)
    if isinstance(expected, str) and not isinstance(actual, str) and actual is not None:
        if isinstance(actual, bool):
            return expected == ("true" if actual else "false")
        return str(actual) == expected
    return False


def check_execution(
    ex: Json,
    spec: Json,
    logs: list[Json],
    lookup: Callable[[str], str],
    problems: list[str],
    where: str = "",
) -> None:
    """Append to ``problems`` every expectation of ``spec`` that ``ex`` does not meet."""

    def fail(msg: str) -> None:
        problems.append(f"{where}{msg}")

    spec = substitute(spec, lambda name: _lookup(name, ex, lookup))
    state = ex["state"]["current"]
    runs = ex.get("taskRunList", [])
    if "expect_state" in spec and state != spec["expect_state"]:
        fail(f"state {state} != {spec['expect_state']}")
    if spec.get("expect_state_terminated") and state not in (
        "SUCCESS",
        "WARNING",
        "FAILED",
        "KILLED",
        "CANCELLED",
        "RETRIED",
        "SKIPPED",
    ):
        fail(f"state {state} is not terminal")
    if "expect_taskrun_count" in spec and len(runs) != spec["expect_taskrun_count"]:
        fail(
            f"{len(runs)} task runs != {spec['expect_taskrun_count']}: "
            f"{[t['taskId'] for t in runs]}"
        )
    for index, task_id in (spec.get("expect_taskrun_order") or {}).items():
        i = int(index)
        if i >= len(runs) or runs[i]["taskId"] != task_id:
            fail(f"task run #{i} is not {task_id}: {[t['taskId'] for t in runs]}")
    for selector, expected in (spec.get("expect_task_states") or {}).items():
        try:
            actual = select(ex, selector)["state"]["current"]
        except AssertionError as exc:
            fail(str(exc))
            continue
        if actual != expected:
            fail(f"{selector} state {actual} != {expected}")
    if "expect_all_task_states" in spec:
        bad = [t["taskId"] for t in runs if t["state"]["current"] != spec["expect_all_task_states"]]
        if bad:
            fail(f"task runs not {spec['expect_all_task_states']}: {bad}")
    for task_id in spec.get("expect_absent_tasks") or []:
        if any(t["taskId"] == task_id for t in runs):
            fail(f"task {task_id} should have no task run")
    for selector, expected in (spec.get("expect_attempts") or {}).items():
        try:
            actual = len(select(ex, selector).get("attempts") or [])
        except AssertionError as exc:
            fail(str(exc))
            continue
        if not matches(actual, expected):
            fail(f"{selector} attempts {actual} != {expected}")
    for key, expected in (spec.get("expect_outputs") or {}).items():
        try:
            actual = output_value(ex, key)
        except (AssertionError, IndexError, ValueError) as exc:
            fail(f"output {key}: {exc}")
            continue
        if not matches(actual, expected):
            fail(f"output {key} = {actual!r}, expected {expected!r}")
    outputs = ex.get("outputs")
    if "expect_flow_outputs_exact" in spec and outputs != spec["expect_flow_outputs_exact"]:
        fail(f"flow outputs {outputs!r} != {spec['expect_flow_outputs_exact']!r}")
    for key, expected in (spec.get("expect_flow_outputs") or {}).items():
        try:
            actual = dig(outputs or {}, key.split("."))
        except (AssertionError, IndexError, ValueError) as exc:
            fail(f"flow output {key}: {exc}")
            continue
        if not matches(actual, expected):
            fail(f"flow output {key} = {actual!r}, expected {expected!r}")
    if (
        "expect_flow_outputs_size" in spec
        and len(outputs or {}) != spec["expect_flow_outputs_size"]
    ):
        fail(f"flow outputs size {len(outputs or {})} != {spec['expect_flow_outputs_size']}")
    if spec.get("expect_flow_outputs_null") and outputs:
        fail(f"flow outputs should be null: {outputs!r}")
    labels = {lb["key"]: lb["value"] for lb in ex.get("labels") or []}
    if "expect_labels_exact" in spec and labels != {
        k: str(v) for k, v in spec["expect_labels_exact"].items()
    }:
        fail(f"labels {labels} != {spec['expect_labels_exact']}")
    for k, v in (spec.get("expect_labels") or {}).items():
        if labels.get(k) != str(v):
            fail(f"label {k}={labels.get(k)!r}, expected {v!r}")
    if "expect_labels_order" in spec:
        order = [[lb["key"], lb["value"]] for lb in ex.get("labels") or []]
        want = spec["expect_labels_order"]
        if order[: len(want)] != want:
            fail(f"labels order {order} does not start with {want}")
    for log_spec in spec.get("expect_logs") or []:
        if not any(_log_matches(ex, log, log_spec) for log in logs):
            fail(f"no log matching {log_spec}: {[lg.get('message') for lg in logs][:20]}")
    for selector in spec.get("expect_no_logs") or []:
        try:
            tr = select(ex, selector)
        except AssertionError as exc:
            fail(str(exc))
            continue
        if any(lg.get("taskRunId") == tr["id"] for lg in logs):
            fail(f"{selector} should have no log")
    for selector, counts in (spec.get("expect_state_history_counts") or {}).items():
        tr = select(ex, selector)
        hist = [h["state"] for h in tr["state"]["histories"]]
        for st, n in counts.items():
            if hist.count(st) != n:
                fail(f"{selector} went {hist.count(st)}x through {st} (want {n}): {hist}")
    if "expect_state_history_prefix" in spec:
        hist = [h["state"] for h in ex["state"]["histories"]]
        want = spec["expect_state_history_prefix"]
        if hist[: len(want)] != want:
            fail(f"execution states {hist} do not start with {want}")
    if "expect_state_sequence_contains" in spec:
        hist = [h["state"] for h in ex["state"]["histories"]]
        want = spec["expect_state_sequence_contains"]
        it = iter(hist)
        if not all(s in it for s in want):
            fail(f"execution states {hist} do not contain {want} in order")
    if "expect_parent_id" in spec and ex.get("parentId") != spec["expect_parent_id"]:
        fail(f"parentId {ex.get('parentId')} != {spec['expect_parent_id']}")
    if "expect_trigger" in spec:
        trig = ex.get("trigger") or {}
        for k, v in spec["expect_trigger"].items():
            if not _eq(trig.get(k), v) and not (
                k == "type" and str(trig.get(k, "")).split(".")[-1] == str(v).split(".")[-1]
            ):
                fail(f"trigger {k} = {trig.get(k)!r}, expected {v!r}")
    for k, v in (spec.get("expect_trigger_variables") or {}).items():
        actual = ((ex.get("trigger") or {}).get("variables") or {}).get(k)
        if not matches(actual, v):
            fail(f"trigger variable {k} = {actual!r}, expected {v!r}")


def _log_matches(ex: Json, log: Json, spec: Json) -> bool:
    if "task" in spec:
        try:
            tr = select(ex, spec["task"])
        except AssertionError:
            return False
        if log.get("taskRunId") != tr["id"]:
            return False
    if "level" in spec and log.get("level") != spec["level"]:
        return False
    if "message" in spec and (log.get("message") or "").strip() != str(spec["message"]).strip():
        return False
    if "contains" in spec and str(spec["contains"]) not in (log.get("message") or ""):
        return False
    return True


def _lookup(name: str, ex: Json, outer: Callable[[str], str]) -> str:
    if name == "execution.id":
        return ex["id"]
    if name.startswith("taskrun.id:"):
        return select(ex, name.split(":", 1)[1])["id"]
    if name.startswith("output:"):
        return str(output_value(ex, name.split(":", 1)[1]))
    return outer(name)
