"""Typed task properties given as templates, rendered and typed on the worker."""

from __future__ import annotations

from common.models.state import State

from .conftest import Harness


def test_timeout_template_is_rendered_as_a_duration(running: Harness) -> None:
    task = running.submit(
        {
            "id": "slow",
            "type": "io.kestra.plugin.core.flow.Sleep",
            "duration": "{{ inputs.nap }}",
            "timeout": "{{ inputs.limit }}",
        },
        {"inputs": {"nap": "PT60S", "limit": "PT0.2S"}},
    )
    result = running.final(task)
    assert result.state == State.FAILED
    assert result.error is not None and "Timeout after PT0.2S" in result.error


def test_invalid_rendered_timeout_names_the_property(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "t",
            "type": "io.kestra.plugin.core.log.Log",
            "message": "never",
            "timeout": "{{ inputs.limit }}",
        },
        {"inputs": {"limit": "later"}},
    )
    assert result.state == State.FAILED
    assert result.error is not None and "timeout: 'later' is not a duration" in result.error
    assert any(e.level == "ERROR" and "timeout: 'later'" in e.message for e in logs)


def test_script_properties_accept_templates(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "w",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "warningOnStdErr": "{{ vars.warn }}",
            "failFast": "{{ vars.fast }}",
            "env": "{{ vars.env }}",
            "commands": ["false", "echo $WHO >&2"],
        },
        {"vars": {"warn": True, "fast": False, "env": {"WHO": "careful"}}},
    )
    # failFast false: `false` did not stop the script; warningOnStdErr: stderr is a warning
    assert result.state == State.WARNING, result.error
    assert ("WARN", "careful") in [(e.level, e.message) for e in logs]


def test_storage_properties_accept_templates(running: Harness) -> None:
    written, _ = running.run(
        {"id": "w", "type": "lanner.core.storage.Write", "content": "a\nb\nc\n"}
    )
    assert written.outputs is not None
    uri = written.outputs["uri"]
    split, _ = running.run(
        {"id": "p", "type": "lanner.core.storage.Split", "from": uri, "rows": "{{ vars.rows }}"},
        {"vars": {"rows": 2}},
    )
    assert split.state == State.SUCCESS, split.error
    assert split.outputs is not None and len(split.outputs["uris"]) == 2
    running.run({"id": "d", "type": "lanner.core.storage.Delete", "uri": uri})
    missing, _ = running.run(
        {
            "id": "d",
            "type": "lanner.core.storage.Delete",
            "uri": uri,
            "errorOnMissing": "{{ vars.strict }}",
        },
        {"vars": {"strict": "true"}},
    )
    assert missing.state == State.FAILED
    assert missing.error == f"Unable to find file '{uri}'"
