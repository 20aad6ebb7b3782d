"""``lanner flow validate|deploy`` and ``lanner execution run``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.backends import Backends
from common.cli import cli
from common.cli.execution import execution
from common.cli.flow import flow
from common.models.execution import StateEntry
from common.models.messages import EXECUTOR_INPUT, NewExecution
from common.models.state import State
from tests.webserver.conftest import HELLO

cli.add_command(flow)
cli.add_command(execution)

BROKEN = "id: broken\nnamespace: n\ntasks:\n  - id: a\n    type: nope.Nope\n"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(HELLO)
    assert invoke("flow", "validate", str(good))[0] == 0
    bad = tmp_path / "bad.yml"
    bad.write_text(BROKEN)
    code, out, err = invoke("flow", "validate", str(good), str(bad))
    assert code == 1
    assert "good.yml: valid (company.team.hello)" in out
    assert f"{bad}:4: tasks[0]: unknown task type 'nope.Nope'" in err
    code, _, err = invoke("flow", "validate", str(tmp_path / "missing.yml"))
    assert code == 1 and "cannot read" in err


def test_deploy_creates_then_updates(tmp_path: Path, server: str, backends: Backends) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yaml").write_text(HELLO)
    code, out, _ = invoke("flow", "deploy", str(tmp_path / "flows"), "--server", server)
    assert code == 0 and "created company.team.hello (revision 1)" in out
    (tmp_path / "flows" / "hello.yaml").write_text(HELLO.replace("team: data", "team: ops"))
    (tmp_path / "flows" / "broken.yml").write_text(BROKEN)
    code, out, err = invoke("flow", "deploy", str(tmp_path / "flows"), "--server", server)
    assert code == 1
    assert "updated company.team.hello (revision 2)" in out
    assert "HTTP 422" in err and "tasks[0] (line 4): unknown task type" in err


def test_unreachable_server(tmp_path: Path) -> None:
    (tmp_path / "hello.yml").write_text(HELLO)
    code, _, err = invoke("flow", "deploy", str(tmp_path), "--server", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach the Lanner server at http://127.0.0.1:9" in err
    assert "Traceback" not in err
    code, _, err = invoke("execution", "run", "n", "f", "--server", "http://127.0.0.1:9")
    assert code == 1 and "is `lanner server local` running?" in err


@pytest.fixture
def fake_executor(backends: Backends) -> Iterator[None]:
    """Ends every new execution: SUCCESS with outputs, or FAILED when labelled fail:yes."""
    stop = threading.Event()
    subscription = backends.queue.subscribe(["executor"], "fake-executor")

    def loop() -> None:
        while not stop.is_set():
            for record in subscription.poll(timeout=0.05):
                message = EXECUTOR_INPUT.validate_json(record.value or b"")
                if not isinstance(message, NewExecution):
                    continue
                execution = message.execution
                failed = execution.label_map().get("fail") == "yes"
                state = State.FAILED if failed else State.SUCCESS
                execution.state.current = state
                execution.state.histories.append(
                    StateEntry(state=state, date=execution.state.histories[0].date)
                )
                execution.outputs = {"echo": execution.inputs}
                execution.sequence = 2
                backends.repositories.executions.save(execution)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)
    subscription.close()


def test_execution_run_and_wait(
    tmp_path: Path, server: str, backends: Backends, fake_executor: None
) -> None:
    invoke("flow", "deploy", str(_write(tmp_path, HELLO)), "--server", server)
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n")
    code, out, _ = invoke(
        "execution", "run", "company.team", "hello",
        "--input", "name=Ada", "--input", f"data=@{data}", "--input", "count=2",
        "--label", "env:test", "--wait", "--server", server,
    )  # fmt: skip
    assert code == 0, out
    result = json.loads(out)
    assert result["state"] == "SUCCESS"
    assert result["outputs"]["echo"]["name"] == "Ada" and result["outputs"]["echo"]["count"] == 2
    assert result["outputs"]["echo"]["data"].endswith("/inputs/data/rows.csv")

    code, out, _ = invoke(
        "execution", "run", "company.team", "hello", "--label", "fail:yes", "--wait",
        "--server", server,
    )  # fmt: skip
    assert code == 1 and json.loads(out)["state"] == "FAILED"


def test_execution_run_errors(tmp_path: Path, server: str) -> None:
    invoke("flow", "deploy", str(_write(tmp_path, HELLO)), "--server", server)
    code, _, err = invoke(
        "execution", "run", "company.team", "hello", "--input", "count=abc", "--server", server
    )
    assert code == 1 and "inputs.count: 'abc' is not an integer" in err
    code, _, err = invoke("execution", "run", "company.team", "nope", "--server", server)
    assert code == 1 and "HTTP 404" in err
    code, _, err = invoke("execution", "run", "n", "f", "--input", "novalue", "--server", server)
    assert code == 2 and "key=value" in err
    code, out, _ = invoke("execution", "run", "company.team", "hello", "--server", server)
    assert code == 0 and json.loads(out)["state"] == "CREATED"


def _write(tmp_path: Path, source: str) -> Path:
    directory = tmp_path / "deploy"
    directory.mkdir(exist_ok=True)
    (directory / "flow.yml").write_text(source)
    return directory
