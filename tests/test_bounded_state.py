"""A long-running connector's memory stays bounded: a task's state is dropped once it is done with (its final
phase answered or it was deleted, and the finished grace passed without a call), and kept while Flyte asks."""

import asyncio
import time

import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import map_task, task
from sky.jobs.state import ManagedJobStatus

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from benchmarks.scale import metadata
from benchmarks.soak import one_task, yaml_template
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector
from flytekitplugins.skypilot.connector import TASK_TYPE_VERSION
from tests.support import fake_runtime, run, wait_for
from tests.support.propeller import prepare_map_subtask

GRACE = 0.3


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def square(i: int) -> int:
    return i * i


@pytest.fixture(autouse=True)
def shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))


def connector_on(server, **settings):
    runtime = fake_runtime(server, finished_grace=GRACE, **settings)
    return SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=runtime), runtime


def held(runtime):
    return {name: n for name, n in runtime.held().items() if n}


def until(connector, meta, *phases):
    """Asks about the task every 0.1 s until its phase is one of `phases`."""
    what = f"{meta.job_name} to reach {phases}"
    return wait_for(lambda: run(connector.get(meta)).phase in phases, 10, every=0.1, what=what)


def drained(runtime):
    return not held(runtime)


async def many(connector, n: int, at_once: int = 500):
    slots = asyncio.Semaphore(at_once)
    template = yaml_template()

    async def one(i):
        async with slots:
            return await one_task(connector, template, i, poll=0.1)

    return await asyncio.gather(*(one(i) for i in range(n)))


def test_every_per_task_map_is_empty_once_2000_finished_tasks_pass_the_grace():
    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY, finish_after=0.2)
    connector, runtime = connector_on(server)
    phases = run(many(connector, 2000))
    assert {answer.phase for answer in phases} == {TaskExecution.SUCCEEDED}
    during = held(runtime)  # the last tasks are still within their grace
    assert during.get("retention.tasks", 0) > 0, during
    wait_for(lambda: drained(runtime), 10, every=0.1, what="every per-task map to empty", show=lambda: held(runtime))


def test_a_task_still_polled_keeps_its_state_and_one_left_alone_is_dropped():
    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY)  # jobs run until told otherwise
    connector, runtime = connector_on(server)
    template = yaml_template()
    polled, left = (run(connector.create(template, f"s3://bounded/{i}", None, metadata(i))) for i in range(2))
    job_id = wait_for(lambda: server.jobs_named(left.job_name), 10, every=0.1, what="left's job")[0]
    server.set_status(job_id, ManagedJobStatus.SUCCEEDED)
    until(connector, left, TaskExecution.SUCCEEDED)
    for _ in range(int(4 * GRACE / 0.1)):  # well past the grace: `polled` is asked about all along
        assert run(connector.get(polled)).phase in (
            TaskExecution.QUEUED,
            TaskExecution.INITIALIZING,
            TaskExecution.RUNNING,
        )
        time.sleep(0.1)
    keys = [(polled.job_name, -1), (left.job_name, -1)]
    assert [k in runtime.retention for k in keys] == [True, False]
    assert runtime.launches.attempt(polled.job_name) is not None and runtime.launches.attempt(left.job_name) is None
    assert keys[1] not in runtime.last_known and keys[0] in runtime.last_known
    # asked about again once forgotten: found again through SkyPilot, with its final phase
    assert run(connector.get(left)).phase == TaskExecution.SUCCEEDED


def test_a_task_propeller_never_comes_back_for_is_dropped_after_forget_after():
    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY)
    connector, runtime = connector_on(server, forget_after=1.0)
    meta = run(connector.create(yaml_template(), "s3://bounded/gone", None, metadata(0)))
    until(connector, meta, TaskExecution.QUEUED)
    assert (meta.job_name, -1) in runtime.retention  # running: the grace alone does not drop it
    time.sleep(GRACE * 2)
    assert (meta.job_name, -1) in runtime.retention
    wait_for(lambda: drained(runtime), 10, every=0.1, what="its state to go", show=lambda: held(runtime))
    assert run(connector.get(meta)).phase in (TaskExecution.QUEUED, TaskExecution.INITIALIZING)  # found again


def test_a_finished_batch_of_map_subtasks_is_dropped_with_its_last_rank():
    server = FakeApiServer(launch_seconds=0.05, latency=NO_LATENCY, finish_after=0.2)
    connector, runtime = connector_on(server, batch_window=0.2)
    metas = [
        run(connector.create(*prepare_map_subtask(map_task(square), {"i": [1, 2, 3]}, index, "ebound")))
        for index in range(3)
    ]
    assert len({m.job_name for m in metas}) == 1 and sorted(m.batch_rank for m in metas) == [0, 1, 2]
    for meta in metas[:2]:
        until(connector, meta, TaskExecution.SUCCEEDED)
    time.sleep(GRACE * 3)
    assert runtime.held()["batches.by_name"] == 1  # rank 2 has not been answered yet: its batch stays
    until(connector, metas[2], TaskExecution.SUCCEEDED)
    wait_for(lambda: drained(runtime), 10, every=0.1, what="the batch to go", show=lambda: held(runtime))
