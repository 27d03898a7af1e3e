"""The connector's create / get / delete against the real API server, as propeller calls them."""

import subprocess
import sys
import time

import pytest
from conftest import queue_by_name, statuses
from flyteidl.core.execution_pb2 import TaskExecution
from tasks import fail_on_node_1, repeat, sleep

from flytekitplugins.skypilot import SkyPilotConnector, SkyPilotMetadata, launch_record
from tests.support import delete, execute, outputs, prepare, run, wait_for

CONNECTOR = SkyPilotConnector()
FINAL = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)


def create(task, inputs, retry=0) -> SkyPilotMetadata:
    template, prefix, metadata = prepare(task, inputs, retry)
    started = time.monotonic()
    meta = run(CONNECTOR.create(template, prefix, None, metadata))
    assert time.monotonic() - started < 10, "CreateTask must return inside propeller's 10 s"
    assert run(CONNECTOR.create(template, prefix, None, metadata)) == meta  # a repeated create launches nothing
    return SkyPilotMetadata.decode(meta.encode())  # what propeller stores and hands back


def test_delete_while_the_launch_request_is_in_flight_leaves_no_job():
    meta = create(sleep, {"seconds": 600})
    delete(CONNECTOR, meta)  # at once: the launch request is still queued or running

    def settled():
        records = queue_by_name(meta.job_name)
        return not records or [r["status"].value for r in records] == ["CANCELLED"]

    wait_for(settled, 420, what="no job, or a CANCELLED one", show=lambda: statuses(meta.job_name))
    time.sleep(10)  # a launch that lands late makes a job: the connector cancels it too (bounded, not at once)
    wait_for(settled, 300, what="every job of that name CANCELLED", show=lambda: statuses(meta.job_name))


def _slurm_allocations(meta: SkyPilotMetadata):
    """The Slurm jobs holding this managed job's cluster (named <job name, shortened>-<job id>-<user hash>)."""
    job_id = queue_by_name(meta.job_name)[0]["job_id"]
    lines = subprocess.run(["squeue", "-h", "-o", "%i|%j"], capture_output=True, text=True).stdout.splitlines()
    return [line.split("|")[0] for line in lines if f"|{meta.job_name[:12]}" in line and f"-{job_id}-" in line]


def _reaches(meta: SkyPilotMetadata, status: str, every: float = 3.0) -> None:
    """Waits (10 min at most) until SkyPilot reports this task's one job in `status`."""
    wait_for(
        lambda: statuses(meta.job_name) == [status], 600, every=every, what=status, show=lambda: statuses(meta.job_name)
    )


@pytest.mark.xdist_group("heavy")
def test_delete_while_starting_or_recovering_leaves_the_job_cancelled():
    starting, recovering = create(sleep, {"seconds": 600}), create(sleep, {"seconds": 600})
    _reaches(starting, "STARTING", every=1)
    # the connector's view may trail SkyPilot's by a polling round or two: not finished, at least
    assert run(CONNECTOR.get(starting)).phase not in FINAL
    delete(CONNECTOR, starting)  # while SkyPilot provisions its cluster
    _reaches(recovering, "RUNNING")
    allocations = _slurm_allocations(recovering)
    assert allocations, subprocess.run(["squeue"], capture_output=True, text=True).stdout
    subprocess.run(["scancel", *allocations], check=True)  # as a preemption would
    _reaches(recovering, "RECOVERING", every=1)
    assert run(CONNECTOR.get(recovering)).phase not in FINAL
    delete(CONNECTOR, recovering)  # while SkyPilot relaunches it
    for meta in (starting, recovering):
        name = meta.job_name
        wait_for(
            lambda n=name: statuses(n) == ["CANCELLED"], 600, what=f"{name} CANCELLED", show=lambda n=name: statuses(n)
        )
        wait_for(lambda m=meta: run(CONNECTOR.get(m)).phase == TaskExecution.ABORTED, 30, what="ABORTED")
    # no orphan keeps running (or is relaunched) after the cancel: its allocation goes once torn down
    wait_for(
        lambda: not _slurm_allocations(recovering),
        300,
        what="the Slurm allocation to go",
        show=lambda: _slurm_allocations(recovering),
    )
    assert statuses(starting.job_name) == statuses(recovering.job_name) == ["CANCELLED"]


def test_a_user_error_on_any_node_fails_the_task_for_good_with_that_nodes_error_and_log():
    attempts = execute(CONNECTOR, fail_on_node_1, {})  # as propeller runs the node (tests/support/propeller.py)
    assert len(attempts) == 1  # retries=3, yet Flyte does not retry a non-recoverable user error
    meta, failed = attempts[0].meta, attempts[0].resource
    assert attempts[0].shown.phase == "permanent_failure" and attempts[0].failed_gets == 0, attempts[0]
    assert failed.phase == TaskExecution.FAILED, failed.message
    assert "node 1: [NON_RECOVERABLE]" in failed.message and "node 1 cannot go on" in failed.message, failed.message
    assert "ValueError" in failed.message and "user program failure" in failed.message  # beside SkyPilot's reason
    log = failed.message.split("last lines of the job's log:\n", 1)[1]  # what the job printed, from SkyPilot
    assert "checked the input: about to give up" in log and "(flyte-" not in log, failed.message
    assert statuses(meta.job_name) == ["FAILED"]


GET_IN_A_NEW_PROCESS = """
import asyncio, sys, time
from flytekitplugins.skypilot import SkyPilotConnector, SkyPilotMetadata
connector = SkyPilotConnector()  # a connector process that never saw the create
meta = SkyPilotMetadata.decode(sys.argv[1].encode())
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    resource = asyncio.run(connector.get(meta))
    if resource.phase in (3, 4, 5, 8):
        break
    time.sleep(5)
print("PHASE", resource.phase, resource.message.splitlines()[0])
"""


CREATE_IN_A_NEW_PROCESS = """
import asyncio, sys
sys.path.insert(0, "tests/bed")
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extend.backend.utils import render_task_template
from flytekit.tools.translator import get_serializable
from tests.support import execution_metadata
from tasks import repeat
from flytekitplugins.skypilot import SkyPilotConnector
prefix, execution = sys.argv[1:]
settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
template = render_task_template(get_serializable({}, settings, repeat).template, prefix)
meta = asyncio.run(SkyPilotConnector().create(template, prefix, None, execution_metadata(execution, "n0", 0)))
print("META", meta.encode().decode())
"""


def test_repeated_creates_launch_one_job_which_a_restarted_connector_tracks_from_its_meta_alone():
    template, prefix, metadata = prepare(repeat, {"word": "restart", "times": 2})
    first = run(CONNECTOR.create(template, prefix, None, metadata))
    # propeller repeats CreateTask to connector processes that never saw the first (the launch still in flight)
    again = run(SkyPilotConnector().create(template, prefix, None, metadata))
    execution = metadata.task_execution_id.node_execution_id.execution_id.name
    out = subprocess.run(
        [sys.executable, "-c", CREATE_IN_A_NEW_PROCESS, prefix, execution], capture_output=True, text=True, timeout=120
    )
    assert "META " in out.stdout, out.stderr[-2000:]
    in_a_new_process = SkyPilotMetadata.decode(out.stdout.split("META ", 1)[1].strip().encode())
    assert first == again == in_a_new_process
    # a connector that stopped between launching and recording the launch request: SkyPilot is asked by name
    launch_record.write(prefix, first.job_name, None)
    in_doubt = run(SkyPilotConnector().create(template, prefix, None, metadata))
    assert in_doubt.request_id in (first.request_id, "")  # the request in flight, or the job it created
    # a connector process that never saw any create tracks the task from its resource meta alone
    out = subprocess.run(
        [sys.executable, "-c", GET_IN_A_NEW_PROCESS, in_doubt.encode().decode()],
        capture_output=True,
        text=True,
        timeout=700,
    ).stdout
    assert f"PHASE {TaskExecution.SUCCEEDED} SkyPilot managed job" in out, out
    assert outputs(prefix, repeat)["o0"].startswith("restart-restart@")
    launch_record.write(prefix, first.job_name, None)
    assert run(SkyPilotConnector().create(template, prefix, None, metadata)).request_id == ""  # found by its name
    assert statuses(first.job_name) == ["SUCCEEDED"]  # five creates, one managed job
