"""map_task over a SkyPilot task, as flytepropeller 1.16's ArrayNode creates its subtasks (tests/support
`prepare_map_subtask`): every subtask's job computes its own element, launched alone or as one batch.

The jobs' commands run here, as the bed's on-host jobs would run them: what SkyPilot was asked to launch (the
stand-in API server keeps it) is executed with its envs, so "every subtask computes element 0" fails the test.
"""

import os
import subprocess

import pytest
from flytekit import map_task, task
from sky.jobs.state import ManagedJobStatus

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector
from flytekitplugins.skypilot.connector import TASK_TYPE_VERSION
from tests.support import fake_runtime, outputs, run, wait_for
from tests.support.propeller import prepare_map_subtask, run_array_node

ITEMS = [3, 5, 7]


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def cube(i: int) -> int:
    return i**3 + int(os.environ.get("OFFSET", "0"))  # OFFSET: an execution env (pyflyte run --envs)


@pytest.fixture(autouse=True)
def shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))


def launched(server, request_id):
    return server._requests[request_id]["task"]


def run_job(sky_task, rank: int = 0, check: bool = True) -> int:
    """The managed job's command, with its envs, as SkyPilot runs it (rank: SKYPILOT_JOB_RANK)."""
    ours = ("FLYTE_K8S_ARRAY_INDEX", "BATCH_JOB_ARRAY_INDEX_VAR_NAME", "OFFSET")  # only what the job was given
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update({k: str(v) for k, v in sky_task.envs.items()}, SKYPILOT_JOB_RANK=str(rank))
    done = subprocess.run(["bash", "-c", sky_task.run], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 or not check, done.stderr[-3000:]
    return done.returncode


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


@task(task_config=SkyPilot(cpus="1+", on_host=True))
def cube_unless_five(i: int) -> int:
    if i == 5:
        raise ValueError("five is not welcome")
    return i**3


class Cluster:
    """What the jobs do between propeller's rounds: each launched job runs its command once (its rank's, in a
    batch) and ends SUCCEEDED or FAILED by its exit code; `live` counts the jobs running at once."""

    def __init__(self, server):
        self.server, self.ran, self.most_live = server, set(), 0

    def __call__(self):
        live = [j for j in self.server.live_jobs()]
        self.most_live = max(self.most_live, len(live))
        for body in list(self.server._requests.values()):
            for rank, job_id in enumerate(body.get("job_ids") or [] if body.get("kind") == "launch" else []):
                if job_id in self.ran or job_id not in live:
                    continue
                self.ran.add(job_id)
                code = run_job(body["task"], rank, check=False)
                self.server.set_status(job_id, ManagedJobStatus.SUCCEEDED if code == 0 else ManagedJobStatus.FAILED)


@pytest.mark.parametrize("concurrency", [2, 0])
def test_concurrency_and_min_success_ratio_behave_as_the_array_node_makes_them(concurrency):
    """concurrency=2: propeller creates two subtasks, and the next only once one has ended, so no more than two
    jobs ever run; 0: all at once. min_success_ratio=0.75 of 4: one failed element still succeeds the node, its
    output None, the others each their own element."""
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    connector = SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=fake_runtime(server, batch_window=0.3))
    mapped = map_task(cube_unless_five, concurrency=concurrency, min_success_ratio=0.75)
    cluster = Cluster(server)
    items = [2, 5, 3, 4]
    array = run_array_node(connector, mapped, {"i": items}, f"econc{concurrency}", cluster=cluster)
    assert array.phase == "succeeded", {i: a.shown for i, a in array.subnodes.items()}
    assert array.outputs == [{"o0": 8}, None, {"o0": 27}, {"o0": 64}]
    assert "five is not welcome" in array.subnodes[1].shown.message  # the user's error, from error.pb
    launched = sum(n for _, n in server.launches)
    assert launched == 4 and len(server.job_ids()) == 4  # one job per subtask, however they were batched
    if concurrency:
        assert array.most_live <= concurrency and cluster.most_live <= concurrency
        assert all(n <= concurrency for _, n in server.launches)
    else:
        assert cluster.most_live == 4 and [n for _, n in server.launches] == [4]


def test_below_min_success_ratio_the_array_node_fails_and_aborts_the_subtasks_still_running():
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    connector = SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=fake_runtime(server, batch_window=0.3))
    mapped = map_task(cube_unless_five, min_success_ratio=1.0)

    def only_fives():  # the other jobs keep running: the failure decides the node
        for body in list(server._requests.values()):
            for rank, job_id in enumerate(body.get("job_ids") or [] if body.get("kind") == "launch" else []):
                if rank == 1 and server.status(job_id) == ManagedJobStatus.RUNNING:
                    code = run_job(body["task"], rank, check=False)
                    server.set_status(job_id, ManagedJobStatus.FAILED if code else ManagedJobStatus.SUCCEEDED)

    array = run_array_node(connector, mapped, {"i": [2, 5, 3]}, "efail", cluster=only_fives)
    assert array.phase == "failed"
    wait_for(lambda: not server.live_jobs(), 20, every=0.5, what="the other subtasks' jobs cancelled")
    assert sorted(server.cancelled) == sorted(
        j for j in server.job_ids() if server.status(j) != ManagedJobStatus.FAILED
    )
