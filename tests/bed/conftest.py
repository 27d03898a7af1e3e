"""Real-bed tests: they need the local test bed (`bash testbed/bed.sh up`) and are marked `bed`."""

import asyncio
import os
import time
import urllib.request

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/bed/" in str(item.fspath):
            item.add_marker(pytest.mark.bed)


@pytest.fixture(scope="session", autouse=True)
def bed():
    endpoint = os.environ.get("SKYPILOT_API_SERVER_ENDPOINT")
    if not endpoint or not os.environ.get("FLYTE_SKYPILOT_SHARED_DIR"):
        pytest.fail('the bed tests need the bed\'s client environment: eval "$(bash testbed/bed.sh env)"')
    try:
        urllib.request.urlopen(f"{endpoint}/api/health", timeout=5).read()
    except OSError as e:
        pytest.fail(f"no SkyPilot API server at {endpoint} ({e}): start it with `bash testbed/bed.sh up`")
    return endpoint


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def wait_for(predicate, timeout: float, every: float = 3.0, what: str = "condition", show=None):
    """Polls `predicate` until truthy; on time-out says what `show()` (the state watched) was last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"; last: {show()}" if show else ""))


def statuses(name: str):
    return [r["status"].value for r in queue_by_name(name)]


def queue_by_name(name: str):
    """SkyPilot's own records of the managed jobs with this name (straight from the SDK, not the plugin)."""
    import sky
    from sky import jobs

    records = sky.get(
        jobs.queue_v2(
            refresh=False,
            all_users=True,
            name_match=name,
            fields=[
                "job_id",
                "job_name",
                "status",
                "failure_reason",
                "pool",
                "recovery_count",
                "current_cluster_name",
                "job_id_on_pool_cluster",
            ],
        )
    )[0]
    return [r for r in records if r["job_name"] == name]
