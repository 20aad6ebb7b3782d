"""``python -m tests.infra fetch|up|down|status``: the test services by hand.

``up`` starts Kafka and Elasticsearch detached (they outlive the command), records their pids
and addresses in ``<cache>/run/state.json`` and prints the variables that point the test suite
and Lanner at them. ``down`` stops what ``up`` started; ``status`` says what runs and answers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import provision, tools
from .elasticsearch import ElasticsearchCluster
from .errors import InfraError
from .kafka import KafkaCluster
from .processes import group_pids, port_open, signal_group
from .waiting import wait_until


def _state_path() -> Path:
    return provision.cache_dir() / "run" / "state.json"


def _read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_path().read_text())
    except FileNotFoundError:
        return None
    return state


def _exports(state: dict[str, Any]) -> list[str]:
    lines = []
    if "kafka" in state:
        servers = state["kafka"]["bootstrap_servers"]
        lines += [
            f"export LANNER_TEST_KAFKA={servers}",
            f"export LANNER_KAFKA_BOOTSTRAP_SERVERS={servers}",
        ]
    if "elasticsearch" in state:
        url = state["elasticsearch"]["url"]
        lines += [
            f"export LANNER_TEST_ELASTICSEARCH={url}",
            f"export LANNER_ELASTICSEARCH_URL={url}",
        ]
    return lines


def _all_pgids(state: dict[str, Any]) -> list[int]:
    return [
        node["pid"]
        for service in ("kafka", "elasticsearch")
        for node in state.get(service, {}).get("nodes", [])
    ]


def up(brokers: int, nodes: int, kafka: bool, elasticsearch: bool) -> None:
    state = _read_state()
    if state is not None and any(group_pids(pgid) for pgid in _all_pgids(state)):
        print("[infra] already up (`python -m tests.infra down` first to change it):")
        status()
        return
    provision.fetch()
    base = provision.cache_dir() / "run" / time.strftime("%Y%m%d-%H%M%S")
    state = {"base_dir": str(base)}
    started: list[KafkaCluster | ElasticsearchCluster] = []
    try:
        if kafka:
            print(f"[infra] starting Kafka ({brokers} node{'s' if brokers > 1 else ''}) ...")
            k = KafkaCluster(base, brokers, detached=True)
            started.append(k)
            k.start()
            state["kafka"] = {
                "bootstrap_servers": k.bootstrap_servers,
                "nodes": [
                    {"pid": n.process.pid, "address": n.address, "log": str(n.log_path)}
                    for n in k.nodes
                    if n.process is not None
                ],
            }
        if elasticsearch:
            print(f"[infra] starting Elasticsearch ({nodes} node{'s' if nodes > 1 else ''}) ...")
            e = ElasticsearchCluster(base, nodes, detached=True)
            started.append(e)
            e.start()
            state["elasticsearch"] = {
                "url": e.url,
                "nodes": [
                    {"pid": n.process.pid, "url": n.url, "log": str(n.log_path)}
                    for n in e.nodes
                    if n.process is not None
                ],
            }
    except BaseException:
        for cluster in started:
            cluster.stop()
        raise
    _state_path().parent.mkdir(parents=True, exist_ok=True)
    _state_path().write_text(json.dumps(state, indent=2))
    print("[infra] up. Point the tests and Lanner at these services with:")
    for line in _exports(state):
        print("  " + line)


def down() -> None:
    state = _read_state()
    if state is None:
        print("[infra] nothing is up")
        return
    pgids = _all_pgids(state)
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    try:
        wait_until(lambda: not any(group_pids(p) for p in pgids), 60, "services to stop")
    except InfraError:
        for pgid in pgids:
            signal_group(pgid, signal.SIGKILL)
        wait_until(lambda: not any(group_pids(p) for p in pgids), 15, "services to die")
    shutil.rmtree(state["base_dir"], ignore_errors=True)
    _state_path().unlink()
    print(f"[infra] down: stopped {len(pgids)} process group(s)")


def status() -> None:
    state = _read_state()
    if state is None:
        print("[infra] nothing is up")
        return
    for node in state.get("kafka", {}).get("nodes", []):
        port = int(node["address"].rsplit(":", 1)[1])
        alive = "running" if group_pids(node["pid"]) else "DEAD"
        answers = "answers" if port_open(port) else "not answering"
        print(f"kafka          {node['address']:<28} pid {node['pid']:<8} {alive}, {answers}")
        print(f"               log {node['log']}")
    for node in state.get("elasticsearch", {}).get("nodes", []):
        port = int(node["url"].rsplit(":", 1)[1])
        alive = "running" if group_pids(node["pid"]) else "DEAD"
        answers = "answers" if port_open(port) else "not answering"
        print(f"elasticsearch  {node['url']:<28} pid {node['pid']:<8} {alive}, {answers}")
        print(f"               log {node['log']}")
    for line in _exports(state):
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.infra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "fetch", help="download Kafka and Elasticsearch, build helm, into the cache (once)"
    )
    up_parser = sub.add_parser("up", help="start Kafka and Elasticsearch in the background")
    up_parser.add_argument("--brokers", type=int, default=1, help="Kafka nodes (default 1)")
    up_parser.add_argument("--nodes", type=int, default=1, help="Elasticsearch nodes (default 1)")
    up_parser.add_argument("--no-kafka", action="store_true")
    up_parser.add_argument("--no-elasticsearch", action="store_true")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs, where, and its log files")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            provision.fetch()
            tools.fetch_helm()
        elif args.command == "up":
            up(args.brokers, args.nodes, not args.no_kafka, not args.no_elasticsearch)
        elif args.command == "down":
            down()
        else:
            status()
    except InfraError as exc:
        print(f"python -m tests.infra {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
