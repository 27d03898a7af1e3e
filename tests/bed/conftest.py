"""Real-bed tests: they need the local test bed (`bash testbed/bed.sh up`) and are marked `bed`."""

import os
import urllib.request
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/bed/" in str(item.fspath):
            item.add_marker(pytest.mark.bed)


@pytest.fixture(scope="session", autouse=True)
def bed():
    endpoint = os.environ.get("SKYPILOT_API_SERVER_ENDPOINT")
    needed = ("FLYTE_SKYPILOT_SHARED_DIR", "FLYTE_SKYPILOT_BED_RAW_OUTPUT", "FLYTE_AWS_ENDPOINT")
    if not endpoint or not all(os.environ.get(k) for k in needed):
        pytest.fail('the bed tests need the bed\'s client environment: eval "$(bash testbed/bed.sh env)"')
    from tests.support import propeller

    propeller.DATA_PREFIX = f"{os.environ['FLYTE_SKYPILOT_BED_RAW_OUTPUT']}/propeller"  # data in the object store
    try:
        urllib.request.urlopen(f"{endpoint}/api/health", timeout=5).read()
    except OSError as e:
        pytest.fail(f"no SkyPilot API server at {endpoint} ({e}): start it with `bash testbed/bed.sh up`")
    return endpoint


RAW_OUTPUT_ENV = "FLYTE_SKYPILOT_BED_RAW_OUTPUT"


def store_objects(since: float):
    """The bed's object store's files written since `since` (the store keeps them as files under its prefix)."""
    root = Path(os.environ.get("BED_PREFIX", "/opt/flyte-skypilot-bed")) / "s3"
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since]


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
