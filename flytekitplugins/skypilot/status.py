"""SkyPilot managed-job and launch-request states -> Flyte phase and message (one table)."""

from typing import Any, Dict, Optional, Tuple

from flyteidl.core.execution_pb2 import TaskExecution

# ManagedJobStatus value -> (Flyte phase, what the message says). Retry policy: FAILED (permanent) only where
# a retry cannot help: an infeasible or invalid request (FAILED_PRECHECKS). Capacity, controller and set-up
# failures are retryable. A failed user program (FAILED) is retryable here; the kind of the user's error in
# error.pb then decides, as for a container task (see user_errors).
JOB_PHASES: Dict[str, Tuple[int, str]] = {
    "PENDING": (TaskExecution.QUEUED, "queued in SkyPilot's managed-jobs queue"),
    "SUBMITTED": (TaskExecution.QUEUED, "submitted"),  # older servers, briefly, before STARTING
    "STARTING": (TaskExecution.INITIALIZING, "provisioning"),
    "RUNNING": (TaskExecution.RUNNING, "running"),
    "RECOVERING": (TaskExecution.WAITING_FOR_RESOURCES, "recovering (relaunching after a preemption or failure)"),
    "CANCELLING": (TaskExecution.RUNNING, "cancelling"),
    "WINDING_DOWN": (TaskExecution.RUNNING, "winding down"),
    "SUCCEEDED": (TaskExecution.SUCCEEDED, "succeeded"),
    "CANCELLED": (TaskExecution.FAILED, "cancelled"),
    "FAILED": (TaskExecution.RETRYABLE_FAILED, "the task failed"),
    "FAILED_SETUP": (TaskExecution.RETRYABLE_FAILED, "the setup commands failed"),
    "FAILED_PRECHECKS": (TaskExecution.FAILED, "SkyPilot cannot run this request"),
    "FAILED_NO_RESOURCE": (TaskExecution.RETRYABLE_FAILED, "no capacity for the requested resources"),
    "FAILED_CONTROLLER": (TaskExecution.RETRYABLE_FAILED, "the SkyPilot jobs controller failed"),
}


# Infra failures a new job may get past: the connector relaunches them within the attempt (see launch_once).
INFRA_FAILURES = ("FAILED_NO_RESOURCE", "FAILED_CONTROLLER")


def infra_failure(record: Optional[Dict[str, Any]]) -> Optional[str]:
    """The job's status if it failed for an infra reason a relaunch may fix, else None."""
    status = str((record or {}).get("status"))
    return status if status in INFRA_FAILURES else None


def job_finished(record: Optional[Dict[str, Any]]) -> bool:
    """Whether a managed-job record is final (no record yet: not)."""
    status = str((record or {}).get("status"))
    return status in ("SUCCEEDED", "CANCELLED") or status.startswith("FAILED")


def job_phase(record: Dict[str, Any]) -> Tuple[int, str]:
    """Phase and message for a managed-job record from queue_v2.

    Propeller stops asking once it has deleted a task, so a CANCELLED job seen here was cancelled outside Flyte.
    """
    status = str(record.get("status"))
    phase, what = JOB_PHASES.get(status, (TaskExecution.RUNNING, status.lower()))
    where = f"SkyPilot managed job {record.get('job_id')} ({record.get('job_name')})"
    message = f"{where}: {what}"
    if record.get("infra") and phase in (TaskExecution.INITIALIZING, TaskExecution.RUNNING):
        message += f" on {record['infra']}"
    if record.get("recovery_count"):
        message += f", recovered {record['recovery_count']} time(s)"
    if record.get("details") and phase in (
        TaskExecution.QUEUED,
        TaskExecution.INITIALIZING,
        TaskExecution.WAITING_FOR_RESOURCES,
    ):
        message += f" ({record['details']})"  # SkyPilot's own word on the wait, e.g. "Job is in backoff"
    if status == "CANCELLED":
        phase = TaskExecution.FAILED
        message += " outside Flyte (not by a Flyte abort)"
    reason = record.get("failure_reason")
    if reason and status.startswith("FAILED"):
        message += f": {reason}"
    return phase, message


def launch_phase(request_state: str, error: Optional[str] = None, retryable: bool = False) -> Tuple[int, str]:
    """Phase and message while the launch request has not produced a job yet, or after it failed."""
    if request_state in ("NEW", "PENDING", "RUNNING"):
        return (
            TaskExecution.INITIALIZING,
            f"SkyPilot is submitting the managed job (launch request {request_state.lower()})",
        )
    if request_state == "CANCELLED":
        return TaskExecution.ABORTED, "the SkyPilot launch request was cancelled before a job was created"
    phase = TaskExecution.RETRYABLE_FAILED if retryable else TaskExecution.FAILED
    return phase, f"SkyPilot could not launch the managed job: {error}"
