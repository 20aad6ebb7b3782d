"""`lanner server local` runs on the embedded queue only, and says so."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from common.cli.server import server


def test_server_local_refuses_the_kafka_queue_naming_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        server, ["local", "--data-dir", str(tmp_path)], env={"LANNER_QUEUE": "kafka"}
    )
    assert result.exit_code == 2
    assert "queue: kafka" in result.output and "embedded SQLite queue" in result.output
    assert not (tmp_path / "lanner.db").exists()
