"""Real-bed tests: they need the local test bed (`bash testbed/bed.sh up`) and are marked `bed`."""

import os
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
