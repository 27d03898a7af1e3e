"""A fan-out's subtasks launched as one SkyPilot request (`num_jobs=N`), each still its own Flyte task."""

import os
import time
import uuid

import pytest
from conftest import queue_by_name
from flyteidl.core.execution_pb2 import TaskExecution

from flytekitplugins.skypilot import SkyPilotConnector, shared_fs, sky_api
from tests.support import delete, outputs, run, wait_for
from tests.support.propeller import prepare_map_subtask

FINAL = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)
N = 4  # each rank its own cluster: more at once than this overloads the 2-core bed


@pytest.fixture
def job_names():
    """The managed jobs' names the test launches: whatever is still running when it ends is cancelled."""
    names = []
    yield names
    import sky
    from sky import jobs

    running = [r["job_id"] for name in names for r in queue_by_name(name) if not r["status"].is_terminal()]
    if running:  # by id: SkyPilot cancels by name only when one job has it, and a batch's jobs share theirs
        sky.get(jobs.cancel(job_ids=running))


WINDOW = 10.0
ITEMS = [10, 11, 12, 13]  # squares 100 and 121 succeed, 12 runs until aborted, 13 fails once (recoverably)


# Four jobs at once load the 2-core bed like four tests (eight took 13.5 min, load average ~50 while they
# provisioned): `bash dev.sh test` runs this after the others, alone. No pool: SkyPilot 0.14 starts a pool's queued
# jobs with minutes of backoff between rounds (measured on the bed: 2 workers took ~25 min for 8 jobs), where
# jobs on their own clusters run side by side.
@pytest.mark.alone
def test_a_map_task_is_one_skypilot_request_whose_subtasks_compute_their_own_elements(monkeypatch, job_names):
    from flytekit import map_task
    from tasks import square

    launches = []
    real_launch = sky_api.launch
    monkeypatch.setattr(
        sky_api, "launch", lambda *a, **k: launches.append(k.get("num_jobs", 1)) or real_launch(*a, **k)
    )
    connector, execution = SkyPilotConnector(task_type_version=1), f"e{uuid.uuid4().hex[:10]}"
    # a window wider than the promised create bound (5 s), so that however loaded the bed, the subtasks created
    # one after another all join one batch
    connector.runtime.settings.batch_window = WINDOW
    markers = os.path.join(shared_fs.run_data_dir(), f"fan-{uuid.uuid4().hex[:6]}")
    shared_fs.open_to_job(markers)
    envs = {"BED_MARKERS": markers}  # an execution env: every subtask's job must see it
    mapped = map_task(square)
    subtasks = []
    for index in range(N):  # as propeller's ArrayNode creates the subtasks: one after another, each at once
        template, prefix, inputs, metadata = prepare_map_subtask(mapped, {"i": ITEMS}, index, execution, envs=envs)
        started = time.monotonic()
        meta = run(connector.create(template, prefix, inputs, metadata))
        assert time.monotonic() - started < 5, "a subtask joins its batch without waiting for the others"
        subtasks.append((meta, prefix))
    metas = [m for m, _ in subtasks]
    job_names.append(metas[0].job_name)
    assert len({m.job_name for m in metas}) == 1 and [m.batch_rank for m in metas] == list(range(N))
    assert launches == []  # nothing launched yet: the batch closes once no subtask joined it for WINDOW s

    cancelled = metas[2]
    wait_for(
        lambda: run(connector.get(cancelled)).phase == TaskExecution.RUNNING,
        900,
        what="item 12 RUNNING",
        show=lambda: run(connector.get(cancelled)).message,
    )
    delete(connector, cancelled)  # only its job: its siblings share its job name and launch request
    assert launches == [N]  # one SkyPilot request for the whole fan-out

    final = {}
    deadline = time.monotonic() + 1200
    while len(final) < N - 1 and time.monotonic() < deadline:
        for index, meta in enumerate(metas):
            if index != 2 and index not in final and (resource := run(connector.get(meta))).phase in FINAL:
                final[index] = resource
        time.sleep(5)
    assert len(final) == N - 1, {r: m.phase for r, m in final.items()}
    # a FlyteRecoverableException: retryable, with the user's own message and kind
    assert final[3].phase == TaskExecution.RETRYABLE_FAILED and "item 13: the service was not ready" in final[3].message
    assert "[RECOVERABLE]" in final[3].message, final[3].message
    for index in (0, 1):  # each computed its own element (element 0 everywhere would give 100 twice)
        assert final[index].phase == TaskExecution.SUCCEEDED, final[index].message
        assert outputs(subtasks[index][1], square) == {"o0": ITEMS[index] ** 2}
    # the failed subtask is retried alone, as its next attempt
    template, prefix, inputs, metadata = prepare_map_subtask(mapped, {"i": ITEMS}, 3, execution, retry=1, envs=envs)
    retry = run(connector.create(template, prefix, inputs, metadata))
    job_names.append(retry.job_name)
    retried = wait_for(lambda: (r := run(connector.get(retry))).phase in FINAL and r, 600, what="the retry to finish")
    assert retried.phase == TaskExecution.SUCCEEDED and outputs(prefix, square) == {"o0": 169}, retried.message
    assert launches == [N, 1] and retry.job_name != metas[0].job_name

    jobs = sorted(queue_by_name(metas[0].job_name), key=lambda r: r["job_id"])
    assert [r["status"].value for r in jobs] == ["SUCCEEDED", "SUCCEEDED", "CANCELLED", "FAILED"]
    aborted = wait_for(
        lambda: (r := run(connector.get(cancelled))).phase == TaskExecution.ABORTED and r, 60, what="item 12 ABORTED"
    )
    assert f"/dashboard/jobs/{jobs[2]['job_id']}" in aborted.log_links[0].uri  # each subtask links its own job
