"""Outputs and logs of each runnable core task, run by a real worker."""

from __future__ import annotations

from common.models.state import State

from .conftest import Harness


def test_log_message_and_list(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "log",
            "type": "io.kestra.plugin.core.log.Log",
            "message": ["hello {{ inputs.name }}", "second"],
            "level": "WARN",
        },
        {"inputs": {"name": "world"}},
    )
    assert result.state == State.SUCCESS
    assert [(e.level, e.message) for e in logs] == [("WARN", "hello world"), ("WARN", "second")]


def test_return_and_echo(running: Harness) -> None:
    result, _ = running.run(
        {"id": "r", "type": "io.kestra.core.tasks.debugs.Return", "format": "{{ 1 + 2 }}"}
    )
    assert result.state == State.SUCCESS
    assert result.outputs == {"value": "3"}
    result, logs = running.run(
        {"id": "e", "type": "lanner.core.debug.Echo", "format": "echoed", "level": "ERROR"}
    )
    assert result.state == State.SUCCESS
    assert [(e.level, e.message) for e in logs] == [("ERROR", "echoed")]


def test_output_values_rendered_recursively(running: Harness) -> None:
    result, _ = running.run(
        {
            "id": "o",
            "type": "io.kestra.plugin.core.output.OutputValues",
            "values": {"a": "{{ inputs.x }}", "nested": {"list": ["{{ inputs.x }}!", 2]}},
        },
        {"inputs": {"x": "v"}},
    )
    assert result.state == State.SUCCESS
    assert result.outputs == {"values": {"a": "v", "nested": {"list": ["v!", 2]}}}


def test_fail_with_and_without_condition(running: Harness) -> None:
    result, logs = running.run(
        {"id": "f", "type": "io.kestra.plugin.core.execution.Fail", "errorMessage": "boom"}
    )
    assert result.state == State.FAILED
    assert result.error == "boom"
    assert ("ERROR", "boom") in [(e.level, e.message) for e in logs]

    result, _ = running.run(
        {"id": "f", "type": "io.kestra.plugin.core.execution.Fail", "condition": "{{ 1 > 2 }}"}
    )
    assert result.state == State.SUCCESS

    result, logs = running.run(
        {"id": "f", "type": "io.kestra.plugin.core.execution.Fail", "condition": "{{ 2 > 1 }}"}
    )
    assert result.state == State.FAILED
    assert result.error == "Task failure"


def test_sleep_short(running: Harness) -> None:
    result, _ = running.run(
        {"id": "s", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT0.05S"}
    )
    assert result.state == State.SUCCESS


def test_storage_write_read_size_concat_split_delete(running: Harness) -> None:
    write, _ = running.run(
        {
            "id": "w",
            "type": "io.kestra.plugin.core.storage.Write",
            "content": "a\nb\nc\n",
            "extension": ".txt",
        }
    )
    assert write.state == State.SUCCESS and write.outputs is not None
    uri = write.outputs["uri"]
    assert uri.startswith("lanner:///main/company/team/flow/executions/") and uri.endswith(".txt")
    assert running.storage.get(uri) == b"a\nb\nc\n"

    read, _ = running.run(
        {"id": "r", "type": "lanner.core.debug.Return", "format": "{{ read(u) }}"}, {"u": uri}
    )
    assert read.outputs == {"value": "a\nb\nc\n"}

    size, _ = running.run({"id": "z", "type": "lanner.core.storage.Size", "uri": uri})
    assert size.outputs == {"size": 6}

    concat, _ = running.run(
        {"id": "c", "type": "lanner.core.storage.Concat", "files": [uri, uri], "separator": "-"}
    )
    assert concat.outputs is not None
    assert running.storage.get(concat.outputs["uri"]) == b"a\nb\nc\n-a\nb\nc\n"

    split, _ = running.run({"id": "p", "type": "lanner.core.storage.Split", "from": uri, "rows": 2})
    assert split.outputs is not None
    assert [running.storage.get(u) for u in split.outputs["uris"]] == [b"a\nb\n", b"c\n"]

    delete, _ = running.run({"id": "d", "type": "lanner.core.storage.Delete", "uri": uri})
    assert delete.outputs == {"uri": uri, "deleted": True}
    assert not running.storage.exists(uri)
    missing, _ = running.run(
        {"id": "d", "type": "lanner.core.storage.Delete", "uri": uri, "errorOnMissing": True}
    )
    assert missing.state == State.FAILED


def test_error_logs_function(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "l",
            "type": "io.kestra.plugin.core.log.Log",
            "message": "{% for e in errorLogs() %}{{ e.message }}{% endfor %}",
        },
        {"__errorLogs__": [{"taskId": "t", "message": "it broke"}]},
    )
    assert result.state == State.SUCCESS, result.error
    assert [e.message for e in logs] == ["it broke"]
