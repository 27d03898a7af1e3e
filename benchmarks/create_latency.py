"""CreateTask latency vs the launch's own resolution time, on a real API server.

    eval "$(bash testbed/bed.sh env)"; .venv/bin/python -m benchmarks.create_latency [N]    (from the repo root)

CreateTask returns once SkyPilot has accepted the launch request; the launch itself (request id -> job id)
resolves later. Prints both, p50 / p99 / max, side by side; every job launched here is cancelled at the end.
"""

import asyncio
import statistics
import sys
import time

from flytekitplugins.skypilot import SkyPilotConnector, sky_api
from tests.bed.tasks import sleep
from tests.support import prepare


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main(n: int) -> None:
    connector = SkyPilotConnector()
    loop = asyncio.new_event_loop()
    create_s, resolve_s, metas = [], [], []
    for _ in range(n):
        template, prefix, metadata = prepare(sleep, {"seconds": 1})
        t0 = time.monotonic()
        meta = loop.run_until_complete(connector.create(template, prefix, None, metadata))
        create_s.append(time.monotonic() - t0)
        while connector.runtime.tracker.launch(meta.request_id, fresh=True).state in ("NEW", "PENDING", "RUNNING"):
            time.sleep(0.2)
        resolve_s.append(time.monotonic() - t0)
        metas.append(meta)
    for meta in metas:
        loop.run_until_complete(connector.delete(meta))
    print(f"{'N':>3} | {'':>18} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for label, values in (("CreateTask", create_s), ("launch resolution", resolve_s)):
        print(f"{n:>3} | {label:>18} {statistics.median(values):>7.2f} {pct(values, 99):>7.2f} {max(values):>7.2f}")
    print(f"resolution / create (p50): {statistics.median(resolve_s) / statistics.median(create_s):.1f}x")
    print(f"endpoint {sky_api.endpoint()}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
