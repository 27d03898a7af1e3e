"""GetTask for N tasks at once: the connector's shared poll vs one queue_v2 per task, on a real API server.

    eval "$(bash testbed/bed.sh env)"; .venv/bin/python -m benchmarks.coalesced_get [N ...]    (from the repo root)

Uses the managed jobs already in the API server's queue (run the tests or the example first); each of the N
tasks asks for one of them. Prints, side by side, wall time and SkyPilot calls for both ways.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from flytekitplugins.skypilot import sky_api
from flytekitplugins.skypilot.tracker import Tracker


def known_job_ids():
    import sky
    from sky import jobs

    records = sky.get(jobs.queue_v2(refresh=False, all_users=True, fields=["job_id"]))[0]
    return [int(r["job_id"]) for r in records]


def naive(job_ids):
    with ThreadPoolExecutor(len(job_ids)) as pool:
        list(pool.map(lambda j: sky_api.queue([j])[j], job_ids))
    return len(job_ids)


def coalesced(job_ids):
    tracker = Tracker(sky_api.Client(), max_age=5.0, wait=120.0)  # the benchmark waits for the answer, however long
    with ThreadPoolExecutor(len(job_ids)) as pool:
        records = list(pool.map(tracker.job, job_ids))
    assert all(r is not None for r in records)
    return tracker.calls


def timed(fn, job_ids):
    started = time.monotonic()
    calls = fn(job_ids)
    return time.monotonic() - started, calls


def main(sizes):
    ids = known_job_ids()
    if not ids:
        sys.exit("no managed jobs in the queue: run `bash dev.sh example` first")
    print(
        f"{'N':>4} | {'per-task s':>10} {'calls':>6} | {'coalesced s':>11} {'calls':>6} | "
        f"{'time ratio':>10} {'call ratio':>10}"
    )
    for n in sizes:
        job_ids = [ids[i % len(ids)] for i in range(n)]
        t_naive, c_naive = timed(naive, job_ids)
        t_ours, c_ours = timed(coalesced, job_ids)
        print(
            f"{n:>4} | {t_naive:>10.2f} {c_naive:>6} | {t_ours:>11.2f} {c_ours:>6} | "
            f"{t_naive / t_ours:>9.1f}x {c_naive / c_ours:>9.1f}x"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 16, 64])
