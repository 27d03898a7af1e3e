"""map_task over a SkyPilot task, as flytepropeller 1.16's ArrayNode creates its subtasks (tests/support
`prepare_map_subtask`): every subtask's job computes its own element, launched alone or as one batch.

The jobs' commands run here, as the bed's on-host jobs would run them: what SkyPilot was asked to launch (the
stand-in API server keeps it) is executed with its envs, so "every subtask computes element 0" fails the test.
"""

import os
import subprocess

import pytest
from flytekit import map_task, task

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector
from flytekitplugins.skypilot.connector import TASK_TYPE_VERSION
from tests.support import fake_runtime, outputs, run, wait_for
from tests.support.propeller import prepare_map_subtask

ITEMS = [3, 5, 7]


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def cube(i: int) -> int:
    return i**3 + int(os.environ.get("OFFSET", "0"))  # OFFSET: an execution env (pyflyte run --envs)


@pytest.fixture(autouse=True)
def shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))


def launched(server, request_id):
    return server._requests[request_id]["task"]


def run_job(sky_task, rank: int = 0) -> None:
    """The managed job's command, with its envs, as SkyPilot runs it (rank: SKYPILOT_JOB_RANK)."""
    ours = ("FLYTE_K8S_ARRAY_INDEX", "BATCH_JOB_ARRAY_INDEX_VAR_NAME", "OFFSET")  # only what the job was given
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update({k: str(v) for k, v in sky_task.envs.items()}, SKYPILOT_JOB_RANK=str(rank))
    done = subprocess.run(["bash", "-c", sky_task.run], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_each_subtask_launched_alone_computes_its_own_element():
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    connector = SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=fake_runtime(server, batch_window=0))
    for index in (0, 2):
        template, prefix, inputs, metadata = prepare_map_subtask(
            map_task(cube), {"i": ITEMS}, index, "emap1", envs={"OFFSET": "1000"}
        )
        assert template.task_type_version == 1 and template.container.args[0] == "pyflyte-map-execute"
        meta = run(connector.create(template, prefix, inputs, metadata))
        sky_task = launched(server, meta.request_id)
        assert sky_task.envs["FLYTE_K8S_ARRAY_INDEX"] == str(index) and sky_task.envs["OFFSET"] == "1000"
        run_job(sky_task)
        assert outputs(prefix, cube) == {"o0": ITEMS[index] ** 3 + 1000}


def test_a_batch_of_subtasks_is_one_launch_whose_ranks_compute_their_own_elements():
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    connector = SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=fake_runtime(server, batch_window=0.3))
    # propeller creates the subtasks one after another, not in index order when some wait for a free slot
    order, subtasks = [2, 0, 1], {}
    for index in order:
        template, prefix, inputs, metadata = prepare_map_subtask(map_task(cube), {"i": ITEMS}, index, "emap2")
        subtasks[index] = (run(connector.create(template, prefix, inputs, metadata)), prefix)
    wait_for(lambda: server.launches, 10, every=0.1, what="the batch's launch")
    assert [n for _, n in server.launches] == [3]  # one SkyPilot request for the three subtasks
    metas = {i: m for i, (m, _) in subtasks.items()}
    assert len({m.job_name for m in metas.values()}) == 1
    assert sorted(m.batch_rank for m in metas.values()) == [0, 1, 2]
    request_id = wait_for(lambda: launch_request(server), 10, every=0.1, what="the launch request")
    sky_task = launched(server, request_id)
    for index, (meta, prefix) in subtasks.items():
        run_job(sky_task, rank=meta.batch_rank)  # the batch's job of this subtask's rank
        assert outputs(prefix, cube) == {"o0": ITEMS[index] ** 3}, (index, meta.batch_rank)


def launch_request(server):
    return next((r for r, body in server._requests.items() if body.get("kind") == "launch"), None)
