"""1,000 in-flight tasks on one connector replica, against a stand-in API server replaying the bed's latencies.

    .venv/bin/python -m benchmarks.scale [N ...]        (from the repo root; default: 100 1000; no API server needed)

For each N: CreateTask for N tasks (10 at a time, as the connector's gRPC workers take them), then four
propeller-like cycles of GetTask for every task at once, 5 s apart; the last two (every launch settled) count.
Prints our way (the shared poll) beside the naive way (one queue_v2 per GetTask) in one run: SkyPilot calls per
minute (naive: per 30 s propeller cycle, one per task), GetTask p50 / p99 in steady state, and the connector
process's memory. The naive way is run up to N=100 (its queue_v2 calls serialise on the server) and
projected beyond from the same replayed latency.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.models.core.identifier import (
    Identifier,
    NodeExecutionIdentifier,
    ResourceType,
    TaskExecutionIdentifier,
    WorkflowExecutionIdentifier,
)
from flytekit.models.task import TaskExecutionMetadata
from flytekit.tools.translator import get_serializable

from benchmarks.fake_sdk import LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilotConnector, SkyPilotYamlTask, sky_api
from flytekitplugins.skypilot.runtime import Runtime
from flytekitplugins.skypilot.settings import ConnectorSettings

NAIVE_MAX = 100


def metadata(i: int) -> TaskExecutionMetadata:
    tid = TaskExecutionIdentifier(
        task_id=Identifier(ResourceType.TASK, "bench", "development", "bench.task", "v1"),
        node_execution_id=NodeExecutionIdentifier(
            f"n{i}", WorkflowExecutionIdentifier("bench", "development", f"e{uuid.uuid4().hex[:8]}")
        ),
        retry_attempt=0,
    )
    return TaskExecutionMetadata(tid, "bench-development", {}, {}, "default", {}, None)


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def timed_gets(get, metas):
    async def one(meta):
        started = time.monotonic()
        await get(meta)
        return time.monotonic() - started

    return await asyncio.gather(*(one(m) for m in metas))


def run_ours(n: int):
    server = FakeApiServer()
    connector = SkyPilotConnector(runtime=Runtime(ConnectorSettings(poll_interval=5.0), sdk=server.sdk()))
    template = get_serializable(
        {},
        SerializationSettings(image_config=ImageConfig.auto_default_image()),
        SkyPilotYamlTask("bench", {"run": "true"}),
    ).template
    runs = os.environ["FLYTE_SKYPILOT_SHARED_DIR"] = tempfile.mkdtemp(prefix="scale-")  # launch records go here

    def create(i):
        return asyncio.run(connector.create(template, f"{runs}/{i}", None, metadata(i)))

    with ThreadPoolExecutor(10) as pool:
        metas = list(pool.map(create, range(n)))
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(64))
    cycles, polled = [], ("api_status", "queue_v2", "get")
    for cycle in range(5):
        if cycle == 3:  # every launch has settled: the steady state propeller sees for the job's lifetime
            calls_at, started = sum(server.calls[k] for k in polled), time.monotonic()
        cycles.append(loop.run_until_complete(timed_gets(connector.get, metas)))
        time.sleep(5)
    per_minute = (sum(server.calls[k] for k in polled) - calls_at) * 60 / (time.monotonic() - started)
    steady = [lat for lats in cycles[3:] for lat in lats]
    steady_calls = round(per_minute)
    return steady_calls, statistics.median(steady), pct(steady, 0.99), rss_mb()


def run_naive(n: int):
    client = sky_api.Client(FakeApiServer(launch_seconds=0.0).sdk())  # only queue_v2 is measured
    job_ids = [client.launched_job_id(client.launch(None, f"naive-{i}")) for i in range(n)]
    with ThreadPoolExecutor(64) as pool:

        def one(job_id):
            started = time.monotonic()
            client.queue([job_id])
            return time.monotonic() - started

        latencies = list(pool.map(one, job_ids))
    return n, statistics.median(latencies), pct(latencies, 0.99)


def _ratio(naive_s: float, ours_s: float) -> str:
    return f">{naive_s / 0.001:.0f}x" if ours_s < 0.001 else f"{naive_s / ours_s:.0f}x"


def main(sizes):
    print(f"replayed latencies (s): {LATENCY}")
    print(
        f"{'N':>5} | {'naive/min':>11} {'p50 s':>7} {'p99 s':>7} | {'ours/min':>10} {'p50 s':>7} {'p99 s':>7} "
        f"{'RSS MB':>7} | {'calls ratio':>11} {'p99 ratio':>9}"
    )
    for n in sizes:
        calls, p50, p99, rss = run_ours(n)
        if n <= NAIVE_MAX:
            n_calls, n_p50, n_p99 = run_naive(n)
            n_calls *= 2  # one queue_v2 per task per 30 s propeller cycle
            label = ""
        else:  # serialised queue_v2 calls: the last of N waits for all of them
            n_calls, n_p50, n_p99 = 2 * n, LATENCY["queue_v2"] * n / 2, LATENCY["queue_v2"] * n
            label = " (naive projected)"
        print(
            f"{n:>5} | {n_calls:>11} {n_p50:>7.2f} {n_p99:>7.2f} | {calls:>10} {p50:>7.3f} {p99:>7.3f} {rss:>7.0f} | "
            f"{n_calls / max(calls, 1):>10.0f}x {_ratio(n_p99, p99):>9}{label}"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000])
