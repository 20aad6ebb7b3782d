"""``python -m tests.bench.indexer_lag [--rate R] [--seconds S]``: the indexer lag at the
benchmark01 load, from an execution's final snapshot on the ``executions`` topic to the moment a
search first finds it in that state.

Starts Kafka and an Elasticsearch node on this machine (or uses ``--kafka`` / ``--elasticsearch``)
and the components as processes (an executor, a worker, a webserver with its indexer on the
Elasticsearch repository), then creates benchmark01 executions through the API at R per minute
for S seconds (after an unmeasured warm-up at the same rate). Meanwhile:

* a consumer of ``executions`` notes, for each execution, the timestamp Kafka gave the first
  record of its terminal snapshot (CreateTime: when the executor produced it);
* a poller asks Elasticsearch every ``--poll`` seconds which of the executions seen terminal on
  the topic a search finds in that state (``terms`` on the ids, ``_source`` off: a cheap query
  that goes through the same refresh as every search), and notes when each first appears.

Lag = first found − produced. The poll interval bounds the resolution (a lag is over-estimated
by at most one interval plus the query's duration). Every process runs on this machine, so the
clocks are one. Prints a markdown table of p50 / p99 / max; it measures, it never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from common.queue.kafka_client import create_consumer
from common.repository.elasticsearch_client import create_client
from tests.infra.deployment import KafkaDeployment
from tests.infra.elasticsearch import ElasticsearchCluster, drop_indices
from tests.infra.kafka import KafkaCluster
from tests.infra.prometheus import sample_value

from ._flows import BENCHMARK01
from ._load import deploy, open_loop

PREFIX = "bench_lag_"
TOPIC_PREFIX = "benchlag."
TERMINAL = {"SUCCESS", "FAILED", "WARNING", "KILLED", "CANCELLED"}


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class TopicWatcher(threading.Thread):
    """Per execution id: the CreateTime (epoch ms) of its first terminal snapshot."""

    def __init__(self, servers: str, topic: str) -> None:
        super().__init__(name="lag-topic", daemon=True)
        self.consumer = create_consumer(servers, f"bench-lag-{uuid.uuid4().hex}", from_latest=True)
        self.consumer.subscribe([topic])
        self.produced: dict[str, tuple[int, str]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.assigned = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for message in self.consumer.consume(500, 0.2):
                if message.error() is not None or message.value() is None:
                    continue
                self.assigned.set()
                body = json.loads(message.value())
                state = body.get("state", {}).get("current")
                if state in TERMINAL:
                    _kind, stamp = message.timestamp()
                    with self.lock:
                        self.produced.setdefault(body["id"], (stamp, state))
            if self.consumer.assignment():
                self.assigned.set()
        self.consumer.close()


class SearchPoller(threading.Thread):
    """Per execution id seen terminal on the topic: when a search first found it in that state
    (epoch ms)."""

    def __init__(self, url: str, index: str, watcher: TopicWatcher, interval: float) -> None:
        super().__init__(name="lag-search", daemon=True)
        self.client = create_client(url)
        self.index = index
        self.watcher = watcher
        self.interval = interval
        self.found: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.watcher.lock:
                pending = {
                    i: s for i, (_, s) in self.watcher.produced.items() if i not in self.found
                }
            by_state: dict[str, list[str]] = {}
            for execution_id, state in pending.items():
                by_state.setdefault(state, []).append(execution_id)
            for state, ids in by_state.items():
                for start in range(0, len(ids), 1000):
                    chunk = ids[start : start + 1000]
                    try:
                        answer = self.client.search(
                            index=self.index,
                            query={
                                "bool": {
                                    "filter": [
                                        {"terms": {"id": chunk}},
                                        {"term": {"state.current": state}},
                                    ]
                                }
                            },
                            source=False,
                            docvalue_fields=["id"],
                            size=len(chunk),
                        )
                    except Exception:  # noqa: BLE001 - not found yet; asked again next time
                        continue
                    now = int(time.time() * 1000)
                    for hit in answer["hits"]["hits"]:
                        self.found.setdefault(hit["fields"]["id"][0], now)
        self.client.close()


class IndexerMetrics(threading.Thread):
    """Samples the indexer's metrics on the webserver's /metrics every second: the largest lag
    per topic seen, and bulk count, records and seconds between ``start`` and ``stop``."""

    TOPICS = ("executions", "logs", "metrics", "workers")

    def __init__(self, url: str) -> None:
        super().__init__(name="lag-metrics", daemon=True)
        self.url = url
        self.max_lag: dict[str, float] = dict.fromkeys(self.TOPICS, 0.0)
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stop = threading.Event()

    def _scrape(self) -> dict[str, float]:
        try:
            text = httpx.get(self.url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        values = {
            name: sample_value(text, name)
            for name in (
                "lanner_indexer_bulk_records_count",
                "lanner_indexer_bulk_records_sum",
                "lanner_indexer_bulk_seconds_sum",
                "lanner_indexer_retries_total",
            )
        }
        for topic in self.TOPICS:
            lag = sample_value(text, "lanner_indexer_lag_records", topic=topic)
            self.max_lag[topic] = max(self.max_lag[topic], lag)
        return values

    def run(self) -> None:
        self.first = self._scrape()
        while not self.stop.wait(1.0):
            self.last = self._scrape() or self.last

    def summary(self) -> str:
        def delta(name: str) -> float:
            return self.last.get(name, 0.0) - self.first.get(name, 0.0)

        bulks = delta("lanner_indexer_bulk_records_count")
        records = delta("lanner_indexer_bulk_records_sum")
        seconds = delta("lanner_indexer_bulk_seconds_sum")
        lags = ", ".join(f"{t} {v:.0f}" for t, v in self.max_lag.items())
        if not bulks:
            return f"indexer: no bulk measured; largest lag seen (records): {lags}"
        return (
            f"indexer: {bulks:.0f} bulks, {records / bulks:.0f} records and "
            f"{1000 * seconds / bulks:.0f} ms each on average, "
            f"{delta('lanner_indexer_retries_total'):.0f} retries; largest lag seen "
            f"(records): {lags}"
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _load(url: str, rate: int, seconds: float, label: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await deploy(client, BENCHMARK01)
        result = await open_loop(
            client,
            "benchmark01",
            rate,
            seconds,
            label,
            drain_seconds=60,
            progress=_progress,
            concurrency=64,
        )
    return result.created


def measure(servers: str, es_url: str, base: Path, args: argparse.Namespace) -> str:
    env = {
        "LANNER_REPOSITORY": "elasticsearch",
        "LANNER_ELASTICSEARCH_URL": es_url,
        "LANNER_ELASTICSEARCH_INDEX_PREFIX": PREFIX,
    }
    deployment = KafkaDeployment(servers, TOPIC_PREFIX, base / "lanner", env=env)
    try:
        _progress("starting an executor, a worker and a webserver with its indexer (Elasticsearch)")
        deployment.start(executors=1, workers=1)
        if args.warmup > 0:
            _progress(f"warming up at {args.rate}/min for {args.warmup:g} s, unmeasured")
            asyncio.run(_load(deployment.url, args.rate, args.warmup, "lag-warmup"))
        watcher = TopicWatcher(servers, TOPIC_PREFIX + "executions")
        watcher.start()
        if not watcher.assigned.wait(60):
            raise RuntimeError("the executions topic was not assigned within 60 s")
        poller = SearchPoller(es_url, PREFIX + "executions", watcher, args.poll)
        poller.start()
        metrics = IndexerMetrics(deployment.url)
        metrics.start()
        _progress(f"benchmark01 at {args.rate}/min for {args.seconds:g} s")
        created = asyncio.run(_load(deployment.url, args.rate, args.seconds, "lag"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with watcher.lock:
                produced = dict(watcher.produced)
            if len(produced) >= created and all(i in poller.found for i in produced):
                break
            time.sleep(0.5)  # waiting for the stragglers, bounded by the deadline
        poller.stop.set()
        watcher.stop.set()
        metrics.stop.set()
        poller.join(10)
        watcher.join(10)
        metrics.join(10)
    finally:
        deployment.stop()
        if args.keep is not None:
            import shutil

            shutil.copytree(base / "lanner" / "logs", args.keep, dirs_exist_ok=True)
    with watcher.lock:
        produced = dict(watcher.produced)
    lags = [poller.found[i] - stamp for i, (stamp, _) in produced.items() if i in poller.found]
    missing = len(produced) - len(lags)
    lines = [
        f"Indexer lag at benchmark01 {args.rate}/min for {args.seconds:g} s (Kafka, Elasticsearch,"
        f" search polled every {args.poll * 1000:.0f} ms): {created} created, {len(produced)} "
        f"ended on the topic, {missing} not found within 60 s",
        "",
        "| snapshot on the topic → searchable | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    if lags:
        lines.append(
            f"| final state | {percentile(lags, 0.5):.0f} | {percentile(lags, 0.99):.0f} "
            f"| {max(lags):.0f} |"
        )
    lines += ["", metrics.summary()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1200, help="executions per minute")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--poll", type=float, default=0.05, help="search interval, seconds")
    parser.add_argument("--kafka", help="bootstrap servers of a running Kafka")
    parser.add_argument("--elasticsearch", help="a running node's URL")
    parser.add_argument("--keep", type=Path, help="copy the components' logs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanner-bench-lag-") as tmp:
        base = Path(tmp)
        kafka = es = None
        try:
            servers = args.kafka
            if servers is None:
                _progress("starting Kafka (one broker on this machine)")
                kafka = KafkaCluster(base / "kafka", 1).start()
                servers = kafka.bootstrap_servers
            url = args.elasticsearch
            if url is None:
                _progress("starting an Elasticsearch node")
                es = ElasticsearchCluster(base / "es", 1).start()
                url = es.url
            print(measure(servers, url, base, args), flush=True)
        finally:
            if es is not None:
                es.stop()
            elif args.elasticsearch:
                client = create_client(args.elasticsearch)
                drop_indices(client, PREFIX)
                client.close()
            if kafka is not None:
                kafka.stop()


if __name__ == "__main__":
    main()
