"""A fan-out launched as one SkyPilot request vs one launch per subtask, side by side, on the real bed.

    eval "$(bash testbed/bed.sh env)"; .venv/bin/python -m benchmarks.fan_out [N] [M] [POOL_NAME]  (repo root)

Creates the subtasks of one task as propeller creates a map_task's (one after another), batched
(FLYTE_SKYPILOT_BATCH_WINDOW=2) and one launch per subtask (=0), on a warm SkyPilot pool (POOL_NAME, left up; or
a new one of M workers, taken down at the end), and prints for each:
- N subtasks (default 16): SkyPilot launch requests, time until every CreateTask returned and until every
  subtask's job exists (has a job id); then the jobs are cancelled;
- M subtasks (default 4, one per worker): the same, and time until all are RUNNING and until all SUCCEEDED.
The bed's two cores are shared by the API server and every cluster: sixteen jobs starting at once on a pool
pushed its load average to ~100 (each start runs SkyPilot's set-up on the worker), so only M run to the end.
"""

import asyncio
import os
import sys
import time
import uuid

from flytekitplugins.skypilot import SkyPilotConnector, settings, sky_api
from tests.bed.tasks import repeat
from tests.support import prepare

RUNNING, SUCCEEDED = 2, 3
FINAL = (3, 4, 5, 8)


def fan_out(n: int, pool: str, batched: bool, to_the_end: bool) -> dict:
    os.environ[settings.BATCH_WINDOW_ENV] = "2" if batched else "0"  # read by the connector's new Runtime
    launches, real_launch = [], sky_api.launch
    sky_api.launch = lambda *a, **k: launches.append(k.get("num_jobs", 1)) or real_launch(*a, **k)
    connector, execution, loop = (
        SkyPilotConnector(task_type_version=1),
        f"e{uuid.uuid4().hex[:10]}",
        asyncio.new_event_loop(),
    )
    started, metas = time.monotonic(), []
    try:
        for i in range(n):
            template, prefix, metadata = prepare(repeat, {"word": f"w{i}", "times": 1}, 0, execution, f"n0-0-{i}")
            template.custom["pool"] = pool
            metas.append(loop.run_until_complete(connector.create(template, prefix, None, metadata)))
        created = time.monotonic() - started
        seen, exists, running = {}, None, None
        while (len(seen) < n if to_the_end else exists is None) and time.monotonic() - started < 1800:
            resources = loop.run_until_complete(_get_all(connector, metas))
            now = time.monotonic() - started
            if exists is None and all(r.log_links for r in resources):  # a dashboard link: the job has an id
                exists = now
            if running is None and all(r.phase in (RUNNING, SUCCEEDED) for r in resources):
                running = now
            seen.update({i: r.phase for i, r in enumerate(resources) if r.phase in FINAL})
            time.sleep(1)
        if not to_the_end:
            return {"requests": len(launches), "created": created, "exists": exists}
        assert all(p == SUCCEEDED for p in seen.values()) and len(seen) == n, seen
        return {
            "requests": len(launches),
            "created": created,
            "exists": exists,
            "running": running,
            "finished": time.monotonic() - started,
        }
    finally:
        sky_api.launch = real_launch


def _patient(call, *args, **kwargs):
    """A pool call through a busy bed's API server: retried while the server does not answer."""
    import sky

    for _ in range(30):
        try:
            return sky.get(call(*args, **kwargs))
        except Exception as e:  # the bed's API server misses health checks under load
            print(f"  {call.__name__}: {type(e).__name__}, retrying", flush=True)
            time.sleep(10)
    raise TimeoutError(f"{call.__name__}: the API server did not answer for 5 min")


async def _get_all(connector: SkyPilotConnector, metas: list) -> list:
    return await asyncio.gather(*(connector.get(m) for m in metas))  # as propeller polls: all at once


def pool_up(workers: int) -> str:
    import sky
    from sky import jobs
    from sky.serve import serve_utils

    name = f"flyte-bench-{uuid.uuid4().hex[:6]}"
    spec = {"resources": {"infra": "slurm/localcluster", "cpus": "1+"}, "pool": {"workers": workers}}
    started = time.monotonic()
    _patient(jobs.pool_apply, sky.Task.from_yaml_config(spec), name, mode=serve_utils.UpdateMode.ROLLING)
    while not _all_ready(_patient(jobs.pool_status, [name]), workers):  # warm: every worker, not the first
        time.sleep(10)
    print(f"pool {name}: {workers} workers READY in {time.monotonic() - started:.0f} s", flush=True)
    return name


def _all_ready(records: list, workers: int) -> bool:
    replicas = records[0].get("replica_info", []) if records else []
    return len(replicas) == workers and all(str(r["status"]).endswith("READY") for r in replicas)


def drain(pool: str, cancel: bool = False) -> None:
    """Until no job is left on the pool (each run starts with every worker idle)."""
    from sky import jobs

    if cancel:
        _patient(jobs.cancel, pool=pool)
    while any(
        not r["status"].is_terminal()
        for r in _patient(jobs.queue_v2, refresh=False, all_users=True, fields=["status", "pool"])[0]
        if r["pool"] == pool
    ):
        time.sleep(5)


ROWS = [
    ("requests", "launch requests"),
    ("created", "all CreateTasks returned s"),
    ("exists", "every job has an id s"),
    ("running", "all RUNNING (or done) s"),
    ("finished", "all SUCCEEDED s"),
]


def side_by_side(title: str, batched: dict, alone: dict) -> None:
    print(title)
    print(f"  {'':28} {'batched':>9} {'one each':>9} {'ratio':>7}")
    for key, label in ROWS:
        if key in batched:
            b, a = batched[key], alone[key]
            print(f"  {label:28} {b:>9.1f} {a:>9.1f} {a / b if b else float('inf'):>6.1f}x")


def both(n: int, pool: str, to_the_end: bool) -> tuple:
    """Batched, then one launch per subtask, each starting with every worker idle."""
    results = []
    for batched in (True, False):
        results.append(fan_out(n, pool, batched, to_the_end))
        print("batched" if batched else "one each", n, results[-1], flush=True)
        drain(pool, cancel=not to_the_end)
    return tuple(results)


def main(n: int, m: int, given: str) -> None:
    import sky
    from sky import jobs

    pool = given or pool_up(m)
    try:
        workers = sum(str(r["status"]).endswith("READY") for r in _patient(jobs.pool_status, [pool])[0]["replica_info"])
        submitted, ran = both(n, pool, to_the_end=False), both(m, pool, to_the_end=True)
    finally:  # a pool with jobs on it is not taken down
        drain(pool, cancel=True)
        if not given:
            _patient(jobs.pool_down, [pool], purge=True)
    where = f"a warm pool of {workers} READY workers (SkyPilot {sky.__version__}, the local bed)"
    side_by_side(f"{n} subtasks on {where}, cancelled once every job has an id:", *submitted)
    side_by_side(f"{m} subtasks on {where}, to the end:", *ran)


if __name__ == "__main__":
    args = sys.argv[1:] + [None] * 3
    main(int(args[0] or 16), int(args[1] or 4), args[2] or "")
