"""A long-running connector's memory: 100,000 tasks through create / get (until final) / delete, 500 at a time.

    .venv/bin/python -m benchmarks.soak [N] [--keep] [--no-contrast]     (from the repo root; no API server needed)

Drives one connector (one Runtime, as a connector server has) against the stand-in API server (fake_sdk) made fast
for it: no replayed latency, launches taken in 0.05 s, jobs succeeding 0.2 s after they start, and finished jobs
forgotten by the stand-in 30 s after their delete (so the process's memory is the connector's). Each task is
created, asked about every 0.5 s until its phase is final, then deleted; 500 are in flight at any time. Prints the
process's RSS (/proc/self/status), its thread count and the per-task state the connector holds (Runtime.held) at
the start, every 10,000 tasks and the end (after the finished grace, 2 s here, has passed), then the end against
the 10,000 mark. Then, in the same process, 10,000 more tasks with nothing forgotten (the behaviour before
retention; `--keep` runs only that), side by side with our last 10,000: RSS growth and the state held at the end.
"""

import asyncio
import sys
import time

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from benchmarks.scale import metadata
from flytekitplugins.skypilot import SkyPilotConnector, SkyPilotYamlTask
from flytekitplugins.skypilot.results import FINISHED
from flytekitplugins.skypilot.runtime import Runtime
from flytekitplugins.skypilot.settings import ConnectorSettings

IN_FLIGHT = 500
EVERY = 10_000
POLL_S = 0.5
GRACE_S = 2.0


def proc_status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return -1


def sample(label: str, done: int, started: float, runtime: Runtime) -> dict:
    held = runtime.held()
    row = {
        "label": label,
        "tasks": done,
        "s": time.monotonic() - started,
        "rss_mb": proc_status("VmRSS") / 1024,
        "threads": proc_status("Threads"),
        "held": sum(held.values()),
        "top": max(held, key=held.get) if any(held.values()) else "-",
    }
    rate = done / row["s"] if row["s"] > 0 else 0.0
    print(
        f"{label:>7} {done:>7} tasks {row['s']:>6.0f} s ({rate:>4.0f}/s)  RSS {row['rss_mb']:>6.1f} MB  "
        f"threads {row['threads']:>4}  per-task entries held {row['held']:>7} (most: {row['top']})",
        flush=True,
    )
    return row


def connector_for_soak(keep: bool):
    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY, finish_after=0.2, retain=30.0)
    settings = ConnectorSettings(poll_interval=1.0, finished_grace=GRACE_S, forget_after=120.0)
    runtime = Runtime(settings, sdk=server.sdk())
    if keep:  # the behaviour before retention: no task's state is ever dropped
        runtime.retention._forget = lambda key, meta: None
    return SkyPilotConnector(runtime=runtime), runtime


async def one_task(connector: SkyPilotConnector, template, i: int, poll: float = POLL_S):
    """Create, get every `poll` seconds until the phase is final, delete; returns the final answer."""
    meta = await connector.create(template, f"s3://soak/{i}", None, metadata(i))
    while True:
        answer = await connector.get(meta)
        if answer.phase in FINISHED:
            break
        await asyncio.sleep(poll)
    await connector.delete(meta)
    return answer


def yaml_template():
    """The task every soak task runs: a YAML task without outputs (no launch record, no object store)."""
    task = SkyPilotYamlTask("soak", {"run": "true"})
    return get_serializable({}, SerializationSettings(image_config=ImageConfig.auto_default_image()), task).template


async def soak(n: int, keep: bool):
    connector, runtime = connector_for_soak(keep)
    template = yaml_template()
    started, done, failed, rows = time.monotonic(), 0, 0, []
    rows.append(sample("start", 0, started, runtime))
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def run(i: int) -> None:
        nonlocal done, failed
        try:
            answer = await one_task(connector, template, i)
            if answer.phase != TaskExecution.SUCCEEDED:
                failed += 1
                print(f"task {i}: {TaskExecution.Phase.Name(answer.phase)}: {answer.message}", flush=True)
        except Exception as e:  # counted and shown, the soak goes on
            failed += 1
            print(f"task {i}: {type(e).__name__}: {e}", flush=True)
        finally:
            slots.release()
            done += 1
            if done % EVERY == 0:
                rows.append(sample(f"{done // 1000}k", done, started, runtime))

    running = set()  # only the tasks in flight: the driver must not hold 100,000 finished ones
    for i in range(n):
        await slots.acquire()
        future = asyncio.ensure_future(run(i))
        running.add(future)
        future.add_done_callback(running.discard)
    await asyncio.gather(*running)
    await asyncio.sleep(GRACE_S + 1.0)  # the finished grace passes; the retention sweeps
    rows.append(sample("end", done, started, runtime))
    compare(rows, failed, keep)
    return rows


def compare(rows, failed: int, keep: bool) -> None:
    mark = next((r for r in rows if r["tasks"] >= EVERY and r["label"] != "end"), rows[0])
    end = rows[-1]
    mode = "kept (--keep)" if keep else "dropped after the grace"
    print(
        f"end vs {mark['label']}: RSS {end['rss_mb'] - mark['rss_mb']:+.1f} MB ({mark['rss_mb']:.1f} -> "
        f"{end['rss_mb']:.1f}), threads {end['threads'] - mark['threads']:+d}, per-task entries "
        f"{mark['held']} -> {end['held']}; state {mode}; {failed} task(s) not SUCCEEDED; {end['s']:.0f} s in all"
    )


def side_by_side(ours, kept) -> None:
    """Ours (warmed up: its last 10,000 tasks) against the same tasks with nothing forgotten."""
    last, before = ours[-2], ours[-3] if len(ours) > 3 else ours[0]
    grown, kept_grown = last["rss_mb"] - before["rss_mb"], kept[-1]["rss_mb"] - kept[0]["rss_mb"]
    held, kept_held = ours[-1]["held"], kept[-1]["held"]
    print(f"{EVERY:,} more tasks, warmed up          dropped     kept   ratio")
    print(f"  RSS growth MB                     {grown:>8.1f} {kept_grown:>8.1f} {kept_grown / max(grown, 0.1):>6.0f}x")
    ratio = f"{kept_held / held:.0f}x" if held else "all kept"
    print(f"  per-task entries held at the end  {held:>8} {kept_held:>8} {ratio:>8}")


def main(argv) -> None:
    numbers = [int(a) for a in argv if a.isdigit()]
    n, keep = (numbers[0] if numbers else 100_000), "--keep" in argv
    rows = asyncio.run(soak(n, keep))
    if not keep and "--no-contrast" not in argv and n >= 2 * EVERY:
        print(f"the same for {EVERY:,} more tasks in this process, nothing forgotten (--keep):", flush=True)
        side_by_side(rows, asyncio.run(soak(EVERY, True)))


if __name__ == "__main__":
    main(sys.argv[1:])
