"""One table from SkyPilot's managed-job and launch states to Flyte phases."""

import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from sky.jobs.state import ManagedJobStatus

from flytekitplugins.skypilot.status import JOB_PHASES, job_phase, launch_phase


def test_every_managed_job_status_has_a_phase():
    assert set(JOB_PHASES) == {s.value for s in ManagedJobStatus}


@pytest.mark.parametrize(
    "status, phase",
    [
        ("PENDING", TaskExecution.QUEUED),
        ("STARTING", TaskExecution.INITIALIZING),
        ("RUNNING", TaskExecution.RUNNING),
        ("RECOVERING", TaskExecution.WAITING_FOR_RESOURCES),
        ("SUCCEEDED", TaskExecution.SUCCEEDED),
        ("FAILED", TaskExecution.RETRYABLE_FAILED),
        ("FAILED_PRECHECKS", TaskExecution.FAILED),
        ("FAILED_NO_RESOURCE", TaskExecution.RETRYABLE_FAILED),
        ("CANCELLED", TaskExecution.FAILED),
    ],
)
def test_phase_of_each_status(status, phase):
    assert job_phase({"job_id": 7, "job_name": "j", "status": status})[0] == phase


def test_terminal_statuses_are_terminal_phases_and_others_are_not():
    terminal = {TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED}
    for status in ManagedJobStatus:
        assert (job_phase({"status": status.value})[0] in terminal) == status.is_terminal(), status


def test_failure_message_carries_skypilots_reason_and_where_the_job_is():
    phase, message = job_phase(
        {
            "job_id": 7,
            "job_name": "j",
            "status": "FAILED",
            "failure_reason": "Job exited with exit code 1 (user program failure).",
        }
    )
    assert "managed job 7 (j)" in message and "exit code 1" in message
    _, running = job_phase(
        {"job_id": 7, "job_name": "j", "status": "RUNNING", "infra": "Slurm (localcluster)", "recovery_count": 2}
    )
    assert "running on Slurm (localcluster)" in running and "recovered 2 time(s)" in running
    assert "outside Flyte" in job_phase({"status": "CANCELLED"})[1]


def test_launch_request_phases():
    assert launch_phase("PENDING")[0] == TaskExecution.INITIALIZING
    phase, message = launch_phase("FAILED", "ResourcesUnavailableError: no H100")
    assert phase == TaskExecution.FAILED and "no H100" in message
    assert launch_phase("FAILED", "KeyError: server bug", retryable=True)[0] == TaskExecution.RETRYABLE_FAILED


def test_a_waiting_job_says_what_it_waits_for_in_skypilots_words():
    record = {"job_id": 7, "job_name": "j", "status": "PENDING", "details": "Job is in backoff"}
    assert (
        job_phase(record)[1]
        == "SkyPilot managed job 7 (j): queued in SkyPilot's managed-jobs queue (Job is in backoff)"
    )
    record = {
        "job_id": 7,
        "job_name": "j",
        "status": "RECOVERING",
        "recovery_count": 2,
        "details": "Waiting for resources",
    }
    assert job_phase(record)[1].endswith(
        "recovering (relaunching after a preemption or failure), recovered 2 time(s) (Waiting for resources)"
    )
    done = {"job_id": 7, "job_name": "j", "status": "SUCCEEDED", "details": "stale"}
    assert "stale" not in job_phase(done)[1]
