"""The SkyPilot API server stops mid-run and comes back: tasks keep their last known phase, then finish.

It stops the bed's API server, so it runs alone, after the other tests (`bash dev.sh test` does so).
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import statuses
from flyteidl.core.execution_pb2 import TaskExecution
from tasks import sleep

from flytekitplugins.skypilot import SkyPilotConnector, settings, sky_api
from tests.support import outputs, prepare, run

pytestmark = [pytest.mark.outage, pytest.mark.alone]
BED = str(Path(__file__).resolve().parents[2] / "testbed" / "bed.sh")
FINAL = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)


def timed_get(connector, meta):
    started = time.monotonic()
    resource = run(connector.get(meta))
    assert time.monotonic() - started < 10, "GetTask must return inside propeller's 10 s, outage or not"
    return resource


def until(connector, meta, phases, timeout):
    deadline = time.monotonic() + timeout
    while (resource := timed_get(connector, meta)).phase not in phases:
        assert time.monotonic() < deadline, resource.message
        time.sleep(5)
    return resource


def test_tasks_ride_out_an_api_server_outage(monkeypatch):
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        pytest.fail("this test stops the API server under the other tests: run it alone (-m outage -n 0)")
    connector = SkyPilotConnector()
    meta = run(connector.create(*prepare(sleep, {"seconds": 150})))
    until(connector, meta, (TaskExecution.RUNNING,), 600)
    subprocess.run(["bash", BED, "api-stop"], check=True)
    try:
        template, prefix, metadata = prepare(sleep, {"seconds": 1})
        with pytest.raises(sky_api.SkyPilotUnavailable, match=sky_api.endpoint()):
            run(connector.create(template, prefix, None, metadata))  # fails clearly, launches nothing
        outage_started = time.monotonic()
        for _ in range(4):  # no exception storm: the last known phase, saying why it is not fresher
            during = timed_get(connector, meta)
            assert during.phase == TaskExecution.RUNNING, during.message
            assert "last known status" in during.message and sky_api.endpoint() in during.message
            time.sleep(5)
        monkeypatch.setenv(settings.OUTAGE_DEADLINE_ENV, "60")
        connector.runtime.settings.outage_deadline = settings.ConnectorSettings.from_env().outage_deadline
        time.sleep(max(0.0, 62 - (time.monotonic() - outage_started)))
        past = timed_get(connector, meta)
        assert past.phase == TaskExecution.RETRYABLE_FAILED and settings.OUTAGE_DEADLINE_ENV in past.message
    finally:
        monkeypatch.delenv(settings.OUTAGE_DEADLINE_ENV)
        connector.runtime.settings.outage_deadline = settings.ConnectorSettings.from_env().outage_deadline
        subprocess.run(["bash", BED, "api-start"], check=True)
    retried = None
    for _ in range(6):  # propeller retries the create that failed; the freshly restarted server may be busy
        try:
            retried = run(connector.create(template, prefix, None, metadata))
            break
        except sky_api.SkyPilotUnavailable:
            time.sleep(10)
    assert retried is not None, "the create retried after the outage did not go through"
    done = until(connector, meta, FINAL, 900)
    assert done.phase == TaskExecution.SUCCEEDED and "last known status" not in done.message, done.message
    assert outputs(meta.output_prefix, sleep) == {"o0": 150}
    assert until(connector, retried, FINAL, 900).phase == TaskExecution.SUCCEEDED
    assert statuses(meta.job_name) == ["SUCCEEDED"] and statuses(retried.job_name) == ["SUCCEEDED"]
