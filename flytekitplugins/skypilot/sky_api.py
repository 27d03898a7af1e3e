"""The only module that calls the SkyPilot SDK: launch, request status, queue, cancel.

Every call here is blocking and talks to the SkyPilot API server named by SKYPILOT_API_SERVER_ENDPOINT.
Errors leave this module as one of three kinds: `SkyPilotUnavailable` (the server cannot be reached or
refuses us), `LaunchFailed` (SkyPilot rejected or could not run a launch request) or `LaunchCancelled`.
"""

import functools
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

# A connector must never start an API server of its own: a missing endpoint is a deployment error.
os.environ["SKYPILOT_DISABLE_LOCAL_API_SERVER"] = "1"

# What get() needs of a managed job, and no more (queue_v2 leaves failure_reason and infra out by default).
QUEUE_FIELDS = ["job_id", "job_name", "status", "failure_reason", "details", "recovery_count", "infra",
                "submitted_at", "start_at", "end_at", "job_duration"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class SkyPilotUnavailable(RuntimeError):
    """The SkyPilot API server cannot be reached, or refused our credentials."""


class LaunchFailed(RuntimeError):
    """SkyPilot rejected a launch request or could not carry it out; the message is SkyPilot's reason."""


class LaunchCancelled(RuntimeError):
    """A launch request was cancelled before it created a job."""


def clean(message: Any) -> str:
    """SkyPilot's text without terminal colour codes."""
    return _ANSI.sub("", str(message)).strip()


def endpoint() -> str:
    """The API server this process talks to."""
    from sky.server import common

    return common.get_server_url()


def _unavailable_errors() -> tuple:
    import requests
    from sky import exceptions

    return (exceptions.ApiServerConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout)


def _on_server(fn: Callable) -> Callable:
    """Turns the SDK's many ways of saying "no server" into one error that names the endpoint."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        from sky import exceptions

        try:
            return fn(*args, **kwargs)
        except _unavailable_errors() as e:
            raise SkyPilotUnavailable(
                f"SkyPilot API server {endpoint()} is unreachable ({type(e).__name__}); check that it is running "
                "and that SKYPILOT_API_SERVER_ENDPOINT points at it"
            ) from None
        except exceptions.ApiServerAuthenticationError:
            raise SkyPilotUnavailable(
                f"SkyPilot API server {endpoint()} refused the credentials; set SKYPILOT_SERVICE_ACCOUNT_TOKEN "
                "to a valid service-account token"
            ) from None

    return call


@_on_server
def launch(task: Any, name: str, pool: Optional[str] = None) -> str:
    """Submits `task` as a managed job; returns the launch request id at once (the launch resolves later)."""
    from sky import jobs

    try:
        return jobs.launch(task, name=name, pool=pool, job_group=None)
    except (ValueError, TypeError) as e:  # validated by the server before the request is queued
        raise LaunchFailed(clean(e)) from None


@_on_server
def request_states(request_ids: Sequence[str]) -> Dict[str, str]:
    """Status (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED) of each known request, in one call."""
    import sky

    if not request_ids:
        return {}
    payloads = sky.api_status(list(request_ids), all_status=True, fields=["request_id", "status"])
    return {p.request_id: str(p.status).rsplit(".", 1)[-1] for p in payloads}


@_on_server
def launched_job_id(request_id: str) -> int:
    """The job id a finished launch request created; raises LaunchFailed / LaunchCancelled otherwise."""
    import sky
    from sky import exceptions

    try:
        result = sky.get(request_id)
    except exceptions.RequestCancelled:
        raise LaunchCancelled(f"launch request {request_id} was cancelled") from None
    except _unavailable_errors():
        raise
    except Exception as e:  # the server re-raises the launch's own exception here
        raise LaunchFailed(f"{type(e).__name__}: {clean(e)}") from None
    job_ids = result[0] if isinstance(result, tuple) else result  # older servers return a bare id
    if isinstance(job_ids, (list, tuple)):
        job_ids = job_ids[0] if job_ids else None
    if job_ids is None:
        raise LaunchFailed(f"launch request {request_id} finished without creating a job")
    return int(job_ids)


@_on_server
def cancel_request(request_id: str, wait_seconds: float = 3.0) -> None:
    """Aborts a launch request still queued or running in the API server."""
    import sky

    _wait(sky.api_cancel(request_id, silent=True), wait_seconds)


@_on_server
def queue(job_ids: Sequence[int]) -> Dict[int, Dict[str, Any]]:
    """Records of these managed jobs, by job id, in one queue_v2 call."""
    import sky
    from sky import jobs

    if not job_ids:
        return {}
    records = sky.get(jobs.queue_v2(refresh=False, all_users=True, job_ids=list(job_ids), fields=QUEUE_FIELDS))[0]
    out = {}
    for record in records:
        rec = {k: record.get(k) for k in QUEUE_FIELDS}
        rec["status"] = getattr(rec["status"], "value", rec["status"])
        if rec.get("failure_reason"):
            rec["failure_reason"] = clean(rec["failure_reason"])
        out[int(rec["job_id"])] = rec
    return out


@_on_server
def cancel_jobs(job_ids: List[int], wait_seconds: float = 6.0) -> None:
    """Cancels managed jobs (a no-op for unknown or finished ones); waits briefly for SkyPilot to accept."""
    from sky import jobs

    if not job_ids:
        return
    _wait(jobs.cancel(job_ids=job_ids), wait_seconds)


@_on_server
def cancel_by_name(job_name: str, wait_seconds: float = 6.0) -> None:
    """Cancels the managed jobs named `job_name`, if there are any."""
    from sky import jobs

    _wait(jobs.cancel(name=job_name), wait_seconds)


def _wait(request_id: str, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if request_states([request_id]).get(request_id) not in ("PENDING", "RUNNING"):
            return
        time.sleep(0.5)
