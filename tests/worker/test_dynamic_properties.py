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
