"""``python -m tests.bench.history [--count N] [--queries Q] [--elasticsearch URL]``: the history
reads of the API on the Elasticsearch repository with N executions (default 100,000) indexed.

Starts an Elasticsearch node (``tests.infra``; or uses ``--elasticsearch``), writes N generated
executions over 30 days (8 flows in 3 namespaces, 6 states, labels and inputs) straight into the
repository in bulk, starts ``lanner server webserver`` on it (embedded queue, no executor), and
times Q requests of each kind through the HTTP API, one at a time:

* the first page of a filtered execution list (namespace prefix and two states);
* page 100 of that list (25 per page: 2,475 results skipped);
* a free-text search (``q`` over ids, labels and inputs);
* the 30-day statistics chart (``/stats/executions/daily``: one day histogram by state).

Prints a markdown table of p50 / p99 / max in ms. It measures; it never asserts. The indexer lag
under load needs the executor and Kafka: ``python -m tests.bench.indexer_lag`` measures it.
``make bench`` runs both after ``python -m tests.bench``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from common.models.execution import Execution, Label, StateEntry, StateInfo
from common.models.state import State
from common.repository.elasticsearch import connect
from tests.infra.elasticsearch import ElasticsearchCluster, drop_indices
from tests.infra.processes import free_ports, http_ok, start_lanner

FLOWS = (
    [("company.team", f"flow{i}") for i in range(4)]
    + [("company.data", f"etl{i}") for i in range(3)]
    + [("other", "hello")]
)
STATES = (State.SUCCESS, State.SUCCESS, State.SUCCESS, State.FAILED, State.RUNNING, State.KILLED)
DAYS = 30
PREFIX = "bench_history_"


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def generate(count: int, end: datetime, seed: int = 11) -> Iterator[Execution]:
    """``count`` executions started over the ``DAYS`` days before ``end``."""
    rng = random.Random(seed)
    span = DAYS * 86400
    for i in range(count):
        namespace, flow_id = rng.choice(FLOWS)
        state = rng.choice(STATES)
        start = end - timedelta(seconds=rng.uniform(0, span))
        histories = [StateEntry(state=State.CREATED, date=start)]
        if state != State.CREATED:
            histories.append(
                StateEntry(state=state, date=start + timedelta(seconds=rng.expovariate(1 / 30)))
            )
        yield Execution(
            id=f"h{i:07d}{rng.getrandbits(32):08x}",
            namespace=namespace,
            flow_id=flow_id,
            state=StateInfo(current=state, histories=histories),
            labels=[Label(key="team", value=rng.choice(["data", "ops", "web"]))],
            inputs={"customer": f"customer-{rng.randrange(5000)}", "size": rng.randrange(100)},
            sequence=2,
        )


def seed(url: str, count: int, end: datetime) -> None:
    repositories = connect(url, PREFIX, request_timeout=120)
    executions = repositories.executions
    batch: list[Execution] = []
    started = time.monotonic()
    for execution in generate(count, end):
        batch.append(execution)
        if len(batch) == 2000:
            executions.save_many(batch)  # type: ignore[attr-defined]
            batch = []
    if batch:
        executions.save_many(batch)  # type: ignore[attr-defined]
    client = executions.store.client  # type: ignore[attr-defined]
    client.indices.refresh(index=PREFIX + "executions")
    client.indices.forcemerge(index=PREFIX + "executions", max_num_segments=1)
    _progress(f"indexed {count} executions in {time.monotonic() - started:.1f} s")


def timed(
    api: httpx.Client, queries: int, request: Callable[[httpx.Client], httpx.Response]
) -> list[float]:
    request(api).raise_for_status()  # warm-up
    spent = []
    for _ in range(queries):
        started = time.perf_counter()
        response = request(api)
        spent.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return sorted(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="requests per figure")
    parser.add_argument("--elasticsearch", help="a running node's URL (else one is started)")
    args = parser.parse_args()
    end = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="lanner-bench-history-") as tmp:
        base = Path(tmp)
        cluster = None
        url = args.elasticsearch
        if url is None:
            _progress("starting an Elasticsearch node")
            cluster = ElasticsearchCluster(base / "es", 1).start()
            url = cluster.url
        web = None
        try:
            seed(url, args.count, end)
            api_port, management_port = free_ports(2)
            env = {
                "LANNER_QUEUE": "sqlite",
                "LANNER_REPOSITORY": "elasticsearch",
                "LANNER_ELASTICSEARCH_URL": url,
                "LANNER_ELASTICSEARCH_INDEX_PREFIX": PREFIX,
                "LANNER_DATA_DIR": str(base / "data"),
                "LANNER_PORT": str(api_port),
                "LANNER_METRICS_PORT": str(management_port),
            }
            web = start_lanner(["server", "webserver"], base / "webserver.log", env=env)
            web.wait_for(
                lambda: http_ok(f"http://127.0.0.1:{management_port}/health/ready"),
                60,
                "the webserver to be ready",
            )
            month = {
                "startDate": (end - timedelta(days=DAYS)).isoformat(),
                "endDate": end.isoformat(),
            }
            listing: dict[str, str | int | list[str]] = {
                "namespace": "company",
                "state": ["SUCCESS", "FAILED"],
                "size": 25,
            }
            figures: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
                (
                    "first page of a filtered list",
                    lambda api: api.get("/api/v1/executions/search", params=listing),
                ),
                (
                    "page 100 of that list",
                    lambda api: api.get(
                        "/api/v1/executions/search", params={**listing, "page": 100}
                    ),
                ),
                (
                    "free-text search (q=customer-4242)",
                    lambda api: api.get("/api/v1/executions/search", params={"q": "customer-4242"}),
                ),
                (
                    "30-day statistics chart",
                    lambda api: api.get("/api/v1/stats/executions/daily", params=month),
                ),
            ]
            lines = [
                f"History reads, {args.count} executions in Elasticsearch, "
                f"{args.queries} sequential requests each",
                "",
                "| request | p50 ms | p99 ms | max ms |",
                "|---|---:|---:|---:|",
            ]
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as api:
                for name, request in figures:
                    _progress(name)
                    spent = timed(api, args.queries, request)
                    p99 = spent[min(len(spent) - 1, int(len(spent) * 0.99))]
                    lines.append(
                        f"| {name} | {spent[len(spent) // 2]:.1f} | {p99:.1f} | {spent[-1]:.1f} |"
                    )
            print("\n".join(lines), flush=True)
        finally:
            if web is not None:
                web.stop()
            if cluster is not None:
                cluster.stop()
            else:
                from common.repository.elasticsearch_client import create_client

                client = create_client(url)
                drop_indices(client, PREFIX)
                client.close()


if __name__ == "__main__":
    main()
