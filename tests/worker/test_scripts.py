"""Script tasks: real subprocesses, the ``::{...}::`` protocol and the ``kestra`` package."""

from __future__ import annotations

import json

import pytest

from common.models.messages import MetricEntry
from common.models.state import State
from common.queue.base import METRICS

from .conftest import Harness, Reader

_METRIC = json.dumps(
    {"metrics": [{"name": "rows", "type": "counter", "value": 3, "tags": {"t": "x"}}]}
)


def test_commands_outputs_logs_and_metrics(running: Harness) -> None:
    metrics = Reader(running.queue, [METRICS])
    result, logs = running.run(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": [
                "echo 'hello {{ inputs.who }}'",
                """echo '::{"outputs":{"a":1}}::'""",
                """echo '::{"outputs":{"b":"two"}}::'""",
                f"echo '::{_METRIC}::'",
                "echo oops >&2",
            ],
            "taskRunner": {"type": "io.kestra.plugin.scripts.runner.docker.Docker"},
            "containerImage": "ubuntu",
        },
        {"inputs": {"who": "you"}},
    )
    assert result.state == State.SUCCESS, result.error
    assert result.outputs == {"vars": {"a": 1, "b": "two"}, "exitCode": 0, "outputFiles": {}}
    pairs = [(e.level, e.message) for e in logs]
    assert ("INFO", "hello you") in pairs
    assert ("ERROR", "oops") in pairs
    assert any("local process" in m for _, m in pairs)
    assert not any("::" in m for _, m in pairs)
    records = metrics.wait_for(lambda r: len(r) >= 1)
    metric = MetricEntry.model_validate_json(records[0].value or b"")
    assert (metric.name, metric.type, metric.value, metric.tags) == (
        "rows",
        "counter",
        3,
        {"t": "x"},
    )


def test_commands_non_zero_exit_fails_with_exit_code(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": ["""echo '::{"outputs":{"partial":true}}::'""", "exit 3", "echo never"],
        }
    )
    assert result.state == State.FAILED
    assert result.error == "Command failed with exit code 3"
    assert result.outputs == {"vars": {"partial": True}, "exitCode": 3, "outputFiles": {}}
    messages = [e.message for e in logs]
    assert "never" not in messages
    assert any(e.level == "ERROR" and "exit code 3" in e.message for e in logs)


def test_commands_files_env_and_working_dir(running: Harness) -> None:
    result, _ = running.run(
        {
            "id": "files",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "inputFiles": {"in.txt": "{{ inputs.data }}"},
            "env": {"GREETING": "hi"},
            "commands": [
                "cat in.txt > out.txt",
                'echo "$GREETING" >> out.txt',
                "mkdir -p sub && echo nested > sub/n.csv",
                'test "$(pwd)" = "{{ workingDir }}"',
            ],
            "outputFiles": ["*.txt", "**/*.csv"],
        },
        {"inputs": {"data": "payload"}},
    )
    assert result.state == State.SUCCESS, result.error
    assert result.outputs is not None
    files = result.outputs["outputFiles"]
    assert sorted(files) == ["in.txt", "out.txt", "sub/n.csv"]
    assert running.storage.get(files["out.txt"]) == b"payloadhi\n"
    assert running.storage.get(files["sub/n.csv"]) == b"nested\n"


def test_warning_on_stderr(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "w",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "warningOnStdErr": True,
            "commands": ["echo careful >&2"],
        }
    )
    assert result.state == State.WARNING
    assert ("WARN", "careful") in [(e.level, e.message) for e in logs]


def test_python_script_with_kestra_package(running: Harness) -> None:
    metrics = Reader(running.queue, [METRICS])
    result, logs = running.run(
        {
            "id": "py",
            "type": "io.kestra.plugin.scripts.python.Script",
            "beforeCommands": ["echo before"],
            "script": (
                "from kestra import Kestra\n"
                "Kestra.outputs({'answer': {{ inputs.n }} * 2, 'name': 'py'})\n"
                "Kestra.counter('items', 5, {'kind': 'test'})\n"
                "Kestra.logger().warning('from the kestra logger')\n"
                "print('plain line')\n"
            ),
        },
        {"inputs": {"n": 21}},
    )
    assert result.state == State.SUCCESS, [e.message for e in logs]
    assert result.outputs is not None
    assert result.outputs["vars"] == {"answer": 42, "name": "py"}
    pairs = [(e.level, e.message) for e in logs]
    assert ("INFO", "before") in pairs
    assert ("INFO", "plain line") in pairs
    assert any(level == "WARN" and "from the kestra logger" in m for level, m in pairs)
    records = metrics.wait_for(lambda r: len(r) >= 1)
    metric = MetricEntry.model_validate_json(records[0].value or b"")
    assert (metric.name, metric.value, metric.tags) == ("items", 5, {"kind": "test"})


def test_python_script_exception_fails(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "py",
            "type": "io.kestra.plugin.scripts.python.Script",
            "script": "raise ValueError('bad value')",
        }
    )
    assert result.state == State.FAILED
    assert result.outputs is not None and result.outputs["exitCode"] == 1
    assert any(e.level == "ERROR" and "ValueError: bad value" in e.message for e in logs)


def test_worker_secrets_are_not_in_the_process_environment(
    running: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "c2VjcmV0")
    monkeypatch.setenv("LANNER_TEST_VISIBLE", "yes")
    result, logs = running.run(
        {
            "id": "env",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": ['echo "token=${SECRET_TOKEN:-none} visible=$LANNER_TEST_VISIBLE"'],
        }
    )
    assert result.state == State.SUCCESS
    assert ("INFO", "token=none visible=yes") in [(e.level, e.message) for e in logs]


def test_secret_function_value_is_masked(running: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "c2VjcmV0")  # base64 of "secret"
    result, logs = running.run(
        {
            "id": "env",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "env": {"TOKEN": "{{ secret('TOKEN') }}"},
            "commands": ['echo "token is $TOKEN"'],
        }
    )
    assert result.state == State.SUCCESS
    assert ("INFO", "token is ********") in [(e.level, e.message) for e in logs]
