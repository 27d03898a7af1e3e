"""Delete while SkyPilot's API server cannot take the cancel: nothing is lost, the cancel goes on."""

import time

import pytest

from flytekitplugins.skypilot import cancel, sky_api
from flytekitplugins.skypilot.tracker import Tracker


def test_a_cancel_the_server_does_not_take_is_retried_in_the_background(monkeypatch):
    calls = []

    def cancel_by_name(job_name, wait_seconds=6.0):
        calls.append(job_name)
        if len(calls) == 1:  # an outage (or a server too slow to answer in time), then it is back
            raise sky_api.SkyPilotUnavailable("SkyPilot API server http://sky is unreachable (ReadTimeout)")

    monkeypatch.setattr(sky_api, "cancel_by_name", cancel_by_name)
    client = sky_api.Client()
    cancels = cancel.Cancels(client, Tracker(client, max_age=5.0), sweep_every=0.05)
    with pytest.raises(sky_api.SkyPilotUnavailable, match="keeps cancelling managed job flyte-x.*repeated delete"):
        cancels.cancel("", "flyte-x")  # propeller retries a failed delete; the connector does not wait for it
    deadline = time.monotonic() + 20  # a loaded machine
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == ["flyte-x", "flyte-x"]
    time.sleep(0.2)
    assert len(calls) == 2  # once SkyPilot took it, the sweeper stops


def test_deleting_a_task_seen_to_succeed_sends_no_cancel_and_a_running_one_is_cancelled(monkeypatch, tmp_path):
    """Propeller deletes only aborted attempts (webapi/core.go: Abort calls Delete, Finalize does not), but a
    delete may still come for a task that finished (an abort racing the end, a client deleting what it ran): a job
    the connector saw succeed costs SkyPilot no cancel request; one still running is cancelled."""
    from flyteidl.core.execution_pb2 import TaskExecution
    from flytekit import task

    from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
    from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector
    from tests.support import fake_runtime, prepare, run, wait_for

    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))

    @task(task_config=SkyPilot(cpus="1+", on_host=True))
    def quick() -> int:
        return 1

    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY, finish_after=0.3)
    conn = SkyPilotConnector(runtime=fake_runtime(server, poll_interval=1.0))
    done = run(conn.create(*prepare(quick, {})))
    wait_for(lambda: run(conn.get(done)).phase == TaskExecution.SUCCEEDED, 20, every=0.2, what="SUCCEEDED")
    run(conn.delete(done))
    assert not [r for r in server._requests.values() if r["kind"] in ("cancel", "api_cancel")]
    server.finish_after = None  # jobs run on from here
    running = run(conn.create(*prepare(quick, {})))
    wait_for(lambda: run(conn.get(running)).phase == TaskExecution.RUNNING, 20, every=0.2, what="RUNNING")
    run(conn.delete(running))
    assert [r["kind"] for r in server._requests.values() if r["kind"] in ("cancel", "api_cancel")], "cancelled"
