"""Flyte's real contract (../shared/PROPELLER.md) on the stand-in API server: CreateTask and GetTask inside
their deadlines whatever SkyPilot does, no orphaned job, infra failures relaunched within the attempt, and what
Flyte shows of a task (log link names, custom_info). Each test builds its own Runtime on its own FakeApiServer."""

import asyncio
import json
import statistics
import time

import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import task
from sky.jobs.state import ManagedJobStatus

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector, SkyPilotMetadata, launch_record
from tests.support import fake_runtime, prepare, run, wait_for

DEADLINE_S = 5.0  # ours, inside propeller's 10 s


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def square(i: int) -> int:
    return i * i


@pytest.fixture(autouse=True)
def shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))


@pytest.fixture
def server():
    return FakeApiServer(launch_seconds=0.3, latency=NO_LATENCY)


def connector(server, **settings) -> SkyPilotConnector:
    return SkyPilotConnector(runtime=fake_runtime(server, **settings))


def timed(coro):
    started = time.monotonic()
    value = run(coro)
    return value, time.monotonic() - started


def create(conn, template, prefix, metadata):
    meta, took = timed(conn.create(template, prefix, None, metadata))
    assert took < DEADLINE_S, f"CreateTask took {took:.1f} s"
    return SkyPilotMetadata.decode(meta.encode())


def get(conn, meta):
    resource, took = timed(conn.get(meta))
    assert took < DEADLINE_S, f"GetTask took {took:.1f} s"
    return resource


def get_until(conn, meta, phase, timeout: float = 20.0, text: str = ""):
    def reached():
        resource = get(conn, meta)
        return resource if resource.phase == phase and text in (resource.message or "") else None

    def show():
        return get(conn, meta).message

    return wait_for(reached, timeout, every=0.1, what=TaskExecution.Phase.Name(phase), show=show)


def _p50_p99(seconds) -> str:
    ordered = sorted(seconds)
    return (
        f"p50 {statistics.median(ordered):.2f} s, p99 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:.2f} s"
    )


def job_id_in(message: str) -> int:
    return int(message.split("SkyPilot managed job ", 1)[1].split()[0])


def test_a_frozen_server_create_and_get_answer_in_time_and_the_launch_lands_once(server):
    conn = connector(server)
    server.hang(8.0)
    creates, gets = [], []
    template, prefix, metadata = prepare(square, {"i": 2})
    for _ in range(2):  # propeller repeats a create only when it lost its state write: same attempt, one launch
        started = time.monotonic()
        meta = create(conn, template, prefix, metadata)
        creates.append(time.monotonic() - started)
        assert meta.request_id == ""  # handed to the background: SkyPilot has not answered
    for _ in range(10):
        started = time.monotonic()
        waiting = get(conn, meta)
        gets.append(time.monotonic() - started)
    assert waiting.phase == TaskExecution.INITIALIZING and "has not taken it yet" in waiting.message
    queued = get_until(conn, meta, TaskExecution.QUEUED)
    assert server.launches == [(meta.job_name, 1)] and job_id_in(queued.message) == server.jobs_named(meta.job_name)[0]
    print(f"\nfrozen 8 s: CreateTask {_p50_p99(creates)}, GetTask {_p50_p99(gets)}")


def test_a_frozen_server_under_tracked_tasks_gets_answer_the_last_known_phase(server):
    conn = connector(server)
    meta = create(conn, *prepare(square, {"i": 3}))
    get_until(conn, meta, TaskExecution.QUEUED)
    server.hang(12.0)
    took = []
    for _ in range(10):
        started = time.monotonic()
        resource = get(conn, meta)
        took.append(time.monotonic() - started)
        assert resource.phase in (TaskExecution.QUEUED, TaskExecution.INITIALIZING, TaskExecution.RUNNING)
    fresh = connector(server)  # a fresh process: its first round cannot finish either
    started = time.monotonic()
    first = get(fresh, meta)
    took.append(time.monotonic() - started)
    assert first.phase == TaskExecution.QUEUED and "status not known yet" in first.message
    assert "no answer from SkyPilot" in first.message
    print(f"\nfrozen 12 s under a tracked task: GetTask {_p50_p99(took)}")


def test_a_delete_while_the_launch_is_not_taken_yet_cancels_it_once_launched(server):
    conn = connector(server)
    server.hang(6.0)
    meta = create(conn, *prepare(square, {"i": 4}))
    assert meta.request_id == ""
    started = time.monotonic()
    try:
        run(conn.delete(meta))
    except Exception as e:  # propeller retries a failed delete; the cancel goes on in the background
        assert "keeps cancelling" in str(e)
    assert time.monotonic() - started < 10
    wait_for(lambda: server.launches, 15, every=0.2, what="the launch to land")
    get_until(conn, meta, TaskExecution.ABORTED)
    time.sleep(1.0)  # the aborted request would have created its job by now
    assert server.live_jobs() == []


def test_the_next_attempt_cancels_the_job_of_an_attempt_whose_create_timed_out(server):
    conn = connector(server)
    server.hang(4.0)
    abandoned = create(conn, *prepare(square, {"i": 5}, 0, "eorphan"))  # propeller gave up on it: no delete
    wait_for(lambda: server.jobs_named(abandoned.job_name), 15, every=0.1, what="attempt 0's job")
    retry = create(conn, *prepare(square, {"i": 5}, 1, "eorphan"))
    wait_for(lambda: not set(server.jobs_named(abandoned.job_name)) & set(server.live_jobs()), 20, what="cancel")
    assert server.status(server.jobs_named(abandoned.job_name)[0]) == ManagedJobStatus.CANCELLED
    [job] = wait_for(lambda: server.jobs_named(retry.job_name), 10, every=0.1, what="attempt 1's job")
    assert job in server.live_jobs() and job_id_in(get(conn, retry).message) == job


def test_infra_failures_are_relaunched_within_the_attempt_until_the_relaunches_are_spent(server):
    conn = connector(server, infra_relaunches=2)
    meta = create(conn, *prepare(square, {"i": 6}))
    first = job_id_in(get_until(conn, meta, TaskExecution.QUEUED).message)
    server.set_status(first, ManagedJobStatus.FAILED_CONTROLLER, failure_reason="the controller died")
    relaunching = get_until(conn, meta, TaskExecution.WAITING_FOR_RESOURCES)
    assert "relaunching after FAILED_CONTROLLER (1 of 2)" in relaunching.message
    queued = get_until(conn, meta, TaskExecution.QUEUED, text="relaunch 1 of 2, after FAILED_CONTROLLER")
    second = job_id_in(queued.message)
    assert second != first and server.jobs_named(meta.job_name) == [first, second]
    assert queued.custom_info["relaunches"] == 1
    restarted = connector(server, infra_relaunches=2)  # a new process finds the relaunch in the launch record
    assert job_id_in(get_until(restarted, meta, TaskExecution.QUEUED).message) == second
    server.set_status(second, ManagedJobStatus.FAILED_NO_RESOURCE, failure_reason="no capacity")
    get_until(restarted, meta, TaskExecution.WAITING_FOR_RESOURCES, text="after FAILED_NO_RESOURCE (2 of 2)")
    third = wait_for(lambda: [j for j in server.jobs_named(meta.job_name) if j > second], 10, every=0.1)[0]
    server.set_status(third, ManagedJobStatus.FAILED_NO_RESOURCE, failure_reason="no capacity")
    failed = get_until(restarted, meta, TaskExecution.RETRYABLE_FAILED)
    assert "FAILED_NO_RESOURCE after 2 relaunch(es) (FLYTE_SKYPILOT_INFRA_RELAUNCHES=2)" in failed.message
    assert len(server.launches) == 3


def test_a_launch_lost_to_a_connector_restart_is_relaunched_from_its_record(server, tmp_path):
    template, prefix, metadata = prepare(square, {"i": 7})
    meta = create(connector(server), template, prefix, metadata)
    plan = launch_record.read(prefix, meta.job_name)["plan"]
    assert plan["task"]["run"] and "secrets" not in plan["task"]  # secret names only, never values
    # another attempt's connector wrote its intent ten minutes ago and stopped before sky.jobs.launch
    lost_prefix, lost_name = str(tmp_path / "lost"), "flyte-lost-0123456789"
    launch_record.write(lost_prefix, lost_name, None, plan=plan)
    path = f"{lost_prefix}/{launch_record.RECORD}"
    with open(path) as f:
        aged = {**json.load(f), "at": time.time() - 600}
    with open(path, "w") as f:
        json.dump(aged, f)
    lost = SkyPilotMetadata(lost_name, "", lost_prefix, meta.endpoint)
    restarted = connector(server)
    resource = get_until(restarted, lost, TaskExecution.QUEUED, text="a connector restart before the launch")
    assert resource.custom_info["relaunches"] == 1
    assert server.launches == [(meta.job_name, 1), (lost_name, 1)]


def test_a_get_never_fails_it_answers_the_last_known_phase_saying_why(server, monkeypatch):
    conn = connector(server)
    meta = create(conn, *prepare(square, {"i": 8}))
    job_id = job_id_in(get_until(conn, meta, TaskExecution.QUEUED).message)
    server.set_status(job_id, ManagedJobStatus.FAILED, failure_reason="exit 1")

    def broken(*args, **kwargs):
        raise KeyError("a bug in the connector")

    monkeypatch.setattr(conn.runtime.results, "of_job", broken)
    resource = get(conn, meta)
    assert resource.phase == TaskExecution.QUEUED and "could not find out" in resource.message
    unknown = SkyPilotMetadata("flyte-never-launched", "no-such-request", meta.output_prefix, meta.endpoint)
    assert get(connector(server), unknown).phase in (TaskExecution.QUEUED, TaskExecution.RETRYABLE_FAILED)


def test_what_flyte_shows_placement_duration_and_cost_in_the_link_name_and_custom_info(server):
    conn = connector(server)
    meta = create(conn, *prepare(square, {"i": 9}))
    queued = get_until(conn, meta, TaskExecution.QUEUED)
    job_id = job_id_in(queued.message)
    assert queued.custom_info["job_id"] == job_id and queued.custom_info["infra"] == "Fake (bench)"
    running = get_until(conn, meta, TaskExecution.RUNNING)  # propeller drops this message: the link name says it
    assert running.log_links[0].name == f"SkyPilot job {job_id} (RUNNING on Fake (bench))"
    assert running.custom_info["status"] == "RUNNING"
    server.set_status(job_id, ManagedJobStatus.SUCCEEDED)
    done = get_until(conn, meta, TaskExecution.SUCCEEDED)
    assert done.log_links[0].name.startswith(f"SkyPilot job {job_id}: ") and "on Fake (bench), cost unknown" in (
        done.log_links[0].name
    )
    assert done.custom_info["job_duration_s"] > 0 and done.custom_info["relaunches"] == 0


def test_a_resource_meta_of_the_previous_release_still_decodes():
    # frozen: what the previous release's create returned (propeller keeps it across connector upgrades)
    frozen = (
        b'{"job_name": "flyte-e1-n0-0-0123456789", "request_id": "5b0c3f0e-1", "output_prefix": "s3://b/e1/n0/0",'
        b' "endpoint": "http://sky:46580", "num_nodes": 2, "outputs": {}, "cluster_name": "", "secrets": ["HF"],'
        b' "batch_rank": -1}'
    )
    meta = SkyPilotMetadata.decode(frozen)
    assert meta.job_name == "flyte-e1-n0-0-0123456789" and meta.num_nodes == 2 and meta.secrets == ["HF"]
    assert SkyPilotMetadata.decode(meta.encode()) == meta and len(meta.encode()) < 400


def test_secret_values_resolved_by_the_create_reach_a_launch_made_in_the_background(monkeypatch):
    """A local run's secrets are found only in its own flytekit context (its thread), not in the background thread
    that makes a slow launch: the launch uses the values the create resolved, and the record keeps names only."""
    import threading

    from flytekitplugins.skypilot import credentials

    creator = threading.get_ident()

    def only_in_the_creating_thread(name, local):
        if threading.get_ident() != creator:
            raise ValueError(name)
        return "value-seen-by-the-create"

    monkeypatch.setattr(credentials, "_task_secret", only_in_the_creating_thread)
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server))

    @task(task_config=SkyPilot(cpus="1+", on_host=True, secrets=["API_TOKEN"]))
    def uses_a_secret() -> int:
        return 1

    template, prefix, metadata = prepare(uses_a_secret, {})
    meta = asyncio.new_event_loop().run_until_complete(conn.create(template, prefix, None, metadata))
    wait_for(lambda: server.launches, 10, every=0.1, what="the launch")
    [body] = [b for b in server._requests.values() if b.get("kind") == "launch"]
    assert body["task"].secrets["API_TOKEN"].get_secret_value() == "value-seen-by-the-create"
    record = open(f"{prefix}/skypilot-launch.json").read()
    assert "value-seen-by-the-create" not in record and meta.job_name in record
