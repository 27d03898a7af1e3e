"""The connector's contract (create / get / delete as propeller drives them), in seconds, on the stand-in API
server: each test builds its own Runtime on its own FakeApiServer (benchmarks/fake_sdk.py)."""

import asyncio
import time

import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import map_task, task
from sky.jobs.state import ManagedJobStatus

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector, SkyPilotMetadata, launch_record
from flytekitplugins.skypilot.connector import MAP_TASK_TYPE_VERSION
from flytekitplugins.skypilot.settings import OUTAGE_DEADLINE_ENV
from tests.support import fake_runtime, prepare, run, wait_for
from tests.support.propeller import prepare_map_subtask


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def square(i: int) -> int:
    return i * i


@pytest.fixture(autouse=True)
def shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))  # output prefixes (and launch records) here


@pytest.fixture
def server():
    return FakeApiServer(launch_seconds=0.3, latency=NO_LATENCY)


def connector(server, version: int = 0, **settings) -> SkyPilotConnector:
    """A connector process of its own (its own Runtime) on `server`."""
    return SkyPilotConnector(task_type_version=version, runtime=fake_runtime(server, **settings))


def create(conn: SkyPilotConnector, template, prefix, metadata) -> SkyPilotMetadata:
    """CreateTask for one prepared attempt; the resource meta as propeller keeps and hands it back."""
    meta = run(conn.create(template, prefix, None, metadata))
    return SkyPilotMetadata.decode(meta.encode())


def get_until(conn: SkyPilotConnector, meta: SkyPilotMetadata, phase: int, timeout: float = 15.0):
    """Polls get (as propeller does, faster) until the task reaches `phase`; returns that Resource."""

    def reached():
        resource = run(conn.get(meta))
        return resource if resource.phase == phase else None

    def show():  # only on time-out
        return run(conn.get(meta)).message

    return wait_for(reached, timeout, every=0.1, what=TaskExecution.Phase.Name(phase), show=show)


def job_id_in(message: str) -> int:
    return int(message.split("SkyPilot managed job ", 1)[1].split()[0])


def test_a_restarted_connector_tracks_the_job_from_its_resource_meta_alone(server):
    meta = create(connector(server), *prepare(square, {"i": 3}))
    restarted = connector(server)  # a new process: nothing of the first one's state
    queued = get_until(restarted, meta, TaskExecution.QUEUED)
    [job_id] = server.jobs_named(meta.job_name)
    assert job_id_in(queued.message) == job_id
    server.set_status(job_id, ManagedJobStatus.SUCCEEDED)
    done = get_until(restarted, meta, TaskExecution.SUCCEEDED)
    assert done.custom_info["job_id"] == job_id and done.log_links[0].uri.endswith(f"/dashboard/jobs/{job_id}")
    assert server.launches == [(meta.job_name, 1)]


def test_repeated_creates_of_one_attempt_launch_exactly_one_job(server):
    server.launch_seconds = 1.5  # the launch request stays in flight through the repeats below
    template, prefix, metadata = prepare(square, {"i": 2})
    first = connector(server)

    async def twice():  # propeller repeats a CreateTask that missed its 10 s while the first is still out
        return await asyncio.gather(*(first.create(template, prefix, None, metadata) for _ in range(2)))

    a, b = run(twice())
    c = run(first.create(template, prefix, None, metadata))
    d = run(connector(server).create(template, prefix, None, metadata))  # a new process reads the launch record
    assert a.request_id and a == b == c == d
    launch_record.write(prefix, a.job_name, None)  # a connector that stopped between launching and recording
    in_flight = run(connector(server).create(template, prefix, None, metadata))
    assert in_flight.request_id == a.request_id  # SkyPilot's launch request of that name, still in flight
    wait_for(lambda: server.jobs_named(a.job_name), 10, every=0.1, what="the job")
    launch_record.write(prefix, a.job_name, None)
    assert run(connector(server).create(template, prefix, None, metadata)).request_id == ""  # its job, by name
    assert server.launches == [(a.job_name, 1)] and len(server.jobs_named(a.job_name)) == 1


def test_an_outage_keeps_the_last_known_phase_until_the_deadline_then_fails_retryable(server):
    # the deadline's floor (60 s) is for deployments; here it is 2 s
    conn = connector(server, outage_deadline=2.0)
    meta = create(conn, *prepare(square, {"i": 4}))
    get_until(conn, meta, TaskExecution.QUEUED)
    server.unreachable, went_down = True, time.monotonic()
    during = wait_for(
        lambda: (r := run(conn.get(meta))).message.count("last known status") and r, 5, every=0.1, what="a note"
    )
    assert (
        during.phase == TaskExecution.QUEUED
        and "is unreachable or does not answer (ApiServerConnectionError)" in during.message
    )
    past = get_until(conn, meta, TaskExecution.RETRYABLE_FAILED)
    assert time.monotonic() - went_down >= 2.0
    assert f"past the connector's outage deadline ({OUTAGE_DEADLINE_ENV}=2)" in past.message
    assert "ApiServerConnectionError" in past.message and len(server.launches) == 1


def test_a_create_during_an_outage_launches_once_the_server_is_back_without_spending_a_retry(server):
    conn = connector(server)
    server.unreachable = True
    started = time.monotonic()  # failing the create would spend one of the task's retries (or fail it outright)
    meta = create(conn, *prepare(square, {"i": 5}))
    assert time.monotonic() - started < 5 and meta.request_id == "" and server.launches == []
    waiting = run(conn.get(meta))
    assert waiting.phase == TaskExecution.INITIALIZING and "unreachable" in waiting.message
    assert "keeps trying" in waiting.message
    server.unreachable = False
    queued = get_until(conn, meta, TaskExecution.QUEUED)
    assert server.launches == [(meta.job_name, 1)] and job_id_in(queued.message) == server.jobs_named(meta.job_name)[0]


def test_an_aborted_task_has_its_job_cancelled_and_reports_aborted(server):
    conn = connector(server)
    meta = create(conn, *prepare(square, {"i": 6}))
    job_id = job_id_in(get_until(conn, meta, TaskExecution.QUEUED).message)
    run(conn.delete(meta))
    assert server.cancelled == [job_id] and server.status(job_id) == ManagedJobStatus.CANCELLED
    aborted = get_until(conn, meta, TaskExecution.ABORTED)
    assert aborted.message.startswith(f"SkyPilot managed job {job_id} cancelled: the task was aborted")
    run(conn.delete(meta))  # propeller may repeat it: idempotent
    assert server.cancelled == [job_id]


def test_an_abort_while_the_launch_is_in_flight_cancels_the_request(server):
    server.launch_seconds = 30.0
    conn = connector(server)
    meta = create(conn, *prepare(square, {"i": 7}))
    run(conn.delete(meta))
    aborted = get_until(conn, meta, TaskExecution.ABORTED)
    assert "launch request was cancelled before a job was created" in aborted.message
    assert server.job_ids() == []  # the request never created its job


def test_map_subtasks_join_one_batch_and_each_rank_has_its_own_job(server):
    conn = connector(server, version=MAP_TASK_TYPE_VERSION, batch_window=0.5)
    mapped, items, metas = map_task(square), {"i": [0, 1, 2]}, []
    for index in range(3):  # as propeller creates a map_task's subtasks: one after another
        template, prefix, inputs, metadata = prepare_map_subtask(mapped, items, index, "e-fanout")
        meta = run(conn.create(template, prefix, inputs, metadata))
        metas.append(SkyPilotMetadata.decode(meta.encode()))
    assert len({m.job_name for m in metas}) == 1 and [m.batch_rank for m in metas] == [0, 1, 2]
    assert server.launches == []  # joined, nothing launched yet: the window is still open
    ids = [job_id_in(get_until(conn, m, TaskExecution.QUEUED).message) for m in metas]
    assert server.launches == [(metas[0].job_name, 3)] and ids == server.jobs_named(metas[0].job_name)
    server.set_status(ids[0], ManagedJobStatus.SUCCEEDED)
    assert get_until(conn, metas[0], TaskExecution.SUCCEEDED).custom_info["job_id"] == ids[0]
    run(conn.delete(metas[2]))  # Flyte aborts one subtask: only its job, not its siblings' shared request
    assert server.cancelled == [ids[2]]
    get_until(conn, metas[2], TaskExecution.ABORTED)
    sibling = run(conn.get(metas[1]))  # runs on
    assert sibling.phase in (TaskExecution.QUEUED, TaskExecution.INITIALIZING) and job_id_in(sibling.message) == ids[1]
    assert not server.status(ids[1]).is_terminal()


def test_a_retry_is_a_new_attempt_with_a_new_job(server):
    conn = connector(server)
    first = create(conn, *prepare(square, {"i": 8}, 0, "e-retry"))
    job_id = job_id_in(get_until(conn, first, TaskExecution.QUEUED).message)
    server.logs[job_id] = "(flyte-x, pid=1) computing\n(flyte-x, pid=1) killed by the OOM killer\n"
    server.set_status(job_id, ManagedJobStatus.FAILED, failure_reason="Job exited with exit code 137")
    failed = get_until(conn, first, TaskExecution.RETRYABLE_FAILED)  # no error.pb: killed, so worth a retry
    assert "exit code 137" in failed.message and "last lines of the job's log:\ncomputing\nkilled" in failed.message
    retry = create(conn, *prepare(square, {"i": 8}, 1, "e-retry"))
    assert retry.job_name != first.job_name and retry.request_id != first.request_id
    assert job_id_in(get_until(conn, retry, TaskExecution.QUEUED).message) != job_id
    assert [name for name, _ in server.launches] == [first.job_name, retry.job_name]


def test_propeller_runs_a_node_to_success_through_a_retry_without_a_failed_get(server):
    """The propeller harness end to end (tests/support/propeller.py run_node): an attempt whose job SkyPilot
    reports FAILED without a user error (killed, say) is a retryable failure, spending one of `retries`; the next
    attempt is a new job; no GetTask fails or misses its deadline on the way; RUNNING and SUCCEEDED reach the
    user without their message, as propeller shows them."""
    from tests.support.propeller import run_node

    conn = connector(server)
    execution = "enode1"

    def attempt(retry):
        template, prefix, metadata = prepare(square, {"i": 4}, retry, execution)
        return template, prefix, None, metadata

    def fail_first_job():
        ids = server.job_ids()
        if ids and server.status(ids[0]) == ManagedJobStatus.RUNNING:
            server.set_status(ids[0], ManagedJobStatus.FAILED, failure_reason="the node went away")
            return True

    seen = []
    real_get = conn.get

    async def get(meta, **kwargs):
        resource = await real_get(meta, **kwargs)
        if len(server.job_ids()) == 1:
            fail_first_job()
        elif server.job_ids():
            server.set_status(server.job_ids()[-1], ManagedJobStatus.SUCCEEDED)
        seen.append(resource.phase)
        return resource

    conn.get = get
    attempts = run_node(conn, attempt, retries=1, resync=0.5, timeout=60)
    assert [a.shown.phase for a in attempts] == ["retryable_failure", "succeeded"], [a.shown for a in attempts]
    assert "the node went away" in attempts[0].shown.message
    assert attempts[1].shown.message is None  # propeller drops SUCCEEDED's message
    assert attempts[0].meta.job_name != attempts[1].meta.job_name and len(server.job_ids()) == 2
    assert sum(a.failed_gets for a in attempts) == 0 and max(s for a in attempts for s in a.get_seconds) < 5
