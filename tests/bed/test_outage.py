"""The SkyPilot API server hangs (SIGSTOP: connections accepted, nothing answered), then stops, mid-run, and
comes back: creates and gets keep inside propeller's deadlines, tasks keep their last known phase, a create
propeller gave up on leaves no job, and every task finishes.

It freezes and stops the bed's API server, so it runs alone, after the other tests (`bash dev.sh test` does so).
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
from tests.support import figures, outputs, prepare, run, wait_for
from tests.support.propeller import create_attempt

pytestmark = [pytest.mark.outage, pytest.mark.alone]
BED = str(Path(__file__).resolve().parents[2] / "testbed" / "bed.sh")
FINAL = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)


def timed_get(connector, meta):
    started = time.monotonic()
    resource = run(connector.get(meta))  # an exception here is a failed GetTask: the test fails
    figures.record("GetTask", time.monotonic() - started, False)
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
    meta = run(connector.create(*prepare(sleep, {"seconds": 240})))
    until(connector, meta, (TaskExecution.RUNNING,), 600)
    with figures.during("API server frozen 30 s (SIGSTOP), then thawed"):
        frozen = _a_frozen_server(connector, meta)
    with figures.during("API server stopped"):
        stopped = time.monotonic()
        subprocess.run(["bash", BED, "api-stop"], check=True)
        try:
            template, prefix, metadata = prepare(sleep, {"seconds": 1})
            # a create during the outage does not fail the attempt (that would spend a retry): it returns inside 5 s
            # and its launch goes through once SkyPilot answers again (on a second connector replica, whose outage
            # deadline stays the default while this test shortens the first one's)
            replica = SkyPilotConnector()
            during_outage = create_attempt(replica, template, prefix, None, metadata)
            assert during_outage.meta is not None and during_outage.create_seconds < 5, during_outage
            waiting = timed_get(replica, during_outage.meta)
            assert waiting.phase not in FINAL and sky_api.endpoint() in waiting.message, waiting.message
            # the first gets may still be answered from the status round taken just before the stop: wait (bounded)
            # for the first round that failed, then the last known phase, saying why it is not fresher, every time
            _until_message(connector, meta, "last known status", 60)
            for _ in range(3):  # no exception storm
                during = timed_get(connector, meta)
                assert during.phase == TaskExecution.RUNNING, during.message
                assert "last known status" in during.message and sky_api.endpoint() in during.message
                time.sleep(5)
            monkeypatch.setenv(settings.OUTAGE_DEADLINE_ENV, "60")
            connector.runtime.settings.outage_deadline = settings.ConnectorSettings.from_env().outage_deadline
            # past the 60 s deadline (counted from the first failed round, so after the stop) the task fails as
            # retryable: wait for it, bounded, and never before the deadline
            past = until(connector, meta, FINAL, 180)
            assert time.monotonic() - stopped >= 60, "failed before the outage deadline"
            assert past.phase == TaskExecution.RETRYABLE_FAILED and settings.OUTAGE_DEADLINE_ENV in past.message
        finally:
            monkeypatch.delenv(settings.OUTAGE_DEADLINE_ENV, raising=False)
            connector.runtime.settings.outage_deadline = settings.ConnectorSettings.from_env().outage_deadline
            subprocess.run(["bash", BED, "api-start"], check=True)
    retried = during_outage.meta
    done = until(connector, meta, FINAL, 900)
    assert done.phase == TaskExecution.SUCCEEDED and "last known status" not in done.message, done.message
    assert outputs(meta.output_prefix, sleep) == {"o0": 240}
    _after_the_frozen_server(connector, *frozen)
    assert until(replica, retried, FINAL, 900).phase == TaskExecution.SUCCEEDED
    assert statuses(meta.job_name) == ["SUCCEEDED"] and statuses(retried.job_name) == ["SUCCEEDED"]


def _until_message(connector, meta, words, timeout):
    """GetTasks (each inside propeller's deadline, the phase RUNNING) until the message says `words`."""
    deadline = time.monotonic() + timeout
    while words not in (resource := timed_get(connector, meta)).message:
        assert resource.phase == TaskExecution.RUNNING, resource.message
        assert time.monotonic() < deadline, f"no {words!r} within {timeout} s: {resource.message}"
        time.sleep(2)
    return resource


def _a_frozen_server(connector, running):
    """30 s of an API server that accepts connections and answers nothing: a create returns inside 5 s (its launch
    follows once the server answers); a create propeller gave up on (its deadline missed, so no DeleteTask will
    come) is followed by the next attempt of that node; GetTask stays inside 5 s and never fails."""
    execution = f"efrozen{int(time.time())}"
    created_args = prepare(sleep, {"seconds": 1})
    abandoned_args = prepare(sleep, {"seconds": 300}, 0, execution, "n1")
    subprocess.run(["bash", BED, "api-freeze"], check=True)
    thawed = False
    try:
        started = time.monotonic()
        created = create_attempt(connector, *created_args[:2], None, created_args[2])
        assert created.meta is not None and created.create_seconds < 5, created
        abandoned = create_attempt(connector, *abandoned_args[:2], None, abandoned_args[2], deadline=0.05)
        assert abandoned.meta is None  # propeller stopped waiting: this attempt ends, its job is nobody's
        while time.monotonic() - started < 30:
            for meta in (running, created.meta):
                begun = time.monotonic()
                resource = run(connector.get(meta))  # an exception here is a failed GetTask: the test fails
                figures.record("GetTask", time.monotonic() - begun, False)
                assert time.monotonic() - begun < 5, "GetTask must return within 5 s while the server hangs"
            assert resource.phase not in FINAL, resource.message
            time.sleep(5)
        subprocess.run(["bash", BED, "api-thaw"], check=True)
        thawed = True
        # propeller's next attempt of the node whose create it gave up on
        retry_args = prepare(sleep, {"seconds": 1}, 1, execution, "n1")
        retried = create_attempt(connector, *retry_args[:2], None, retry_args[2])
        assert retried.meta is not None and retried.create_seconds < 5, retried
    finally:
        if not thawed:
            subprocess.run(["bash", BED, "api-thaw"], check=True)
    from flytekitplugins.skypilot.connector import job_name

    # both launches taken before the outage that follows (a launch in doubt during it is another test's case);
    # the thawed server works off its backlog first, and SkyPilot's own client gives up on a slow health check
    wait_for(lambda: _known(created.meta.job_name) and _known(retried.meta.job_name), 600, what="the launches")
    return created.meta, job_name(abandoned_args[2], abandoned_args[1]), retried.meta


def _after_the_frozen_server(connector, created, abandoned_name, retried):
    """The create made while the server hung launched exactly one job, which succeeded; the abandoned attempt's
    job, if its launch went through, was cancelled when the next attempt was created; the next attempt succeeded."""
    assert until(connector, created, FINAL, 900).phase == TaskExecution.SUCCEEDED
    assert statuses(created.job_name) == ["SUCCEEDED"]
    assert until(connector, retried, FINAL, 900).phase == TaskExecution.SUCCEEDED
    wait_for(
        lambda: statuses(abandoned_name) in ([], ["CANCELLED"]),
        300,
        what="the abandoned attempt's job to be cancelled (or never launched)",
        show=lambda: statuses(abandoned_name),
    )


def _known(job_name: str) -> bool:
    """Whether SkyPilot lists a job of this name; False while the server is too busy to say."""
    try:
        return bool(statuses(job_name))
    except Exception:  # the test's own SDK call (SkyPilot's client, unbounded), not the connector's
        return False
