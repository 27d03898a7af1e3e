"""What GetTask answers: from the latest polling round when it can (no waiting), else from blocking work the
connector bounds (see bounded), and when that cannot finish in time, the last known answer, saying why."""

from typing import Optional

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.extend.backend.base_connector import Resource

from . import status
from .launch_once import Attempt
from .resource_meta import SkyPilotMetadata
from .results import FINISHED
from .runtime import Runtime
from .tracker import Launch


def now(runtime: Runtime, meta: SkyPilotMetadata) -> Optional[Resource]:
    """The answer from memory alone: a job the latest round has seen and that has not finished (else None)."""
    past = runtime.results.past_outage_deadline()
    if past is not None:
        return past
    job_id, record = runtime.launches.cached(meta)
    if record is None or status.job_finished(record):
        return None
    return runtime.results.of_job(job_id, record, meta, _aborted(runtime, meta), _attempt(runtime, meta))


def blocking(runtime: Runtime, meta: SkyPilotMetadata) -> Resource:
    """The answer, waiting for SkyPilot where it must (a first round, a log tail, prices, outputs); relaunches the
    attempt after an infra failure, within the attempt."""
    job_id, waiting = runtime.launches.job_id(meta)
    aborted, attempt = _aborted(runtime, meta), _attempt(runtime, meta)
    if waiting is not None:
        lost = isinstance(waiting, Launch) and waiting.state == "FAILED" and waiting.retryable
        if lost and meta.batch_rank < 0 and not aborted:  # SkyPilot failed the launch for a reason of its own
            attempt = runtime.launches.relaunch(meta, f"a failed launch request ({waiting.error})", None)
            return runtime.results.before_the_job(meta, attempt, attempt)
        return runtime.results.before_the_job(meta, waiting, attempt)
    record = runtime.tracker.job(job_id)
    resource = runtime.results.of_job(job_id, record, meta, aborted, attempt)
    why = status.infra_failure(record)
    if why is None or aborted or meta.batch_rank >= 0 or resource.phase != TaskExecution.RETRYABLE_FAILED:
        return resource
    attempt = runtime.launches.relaunch(meta, why, job_id)
    if attempt.error is None:
        return runtime.results.before_the_job(meta, attempt, attempt)
    resource.message = (
        f"{resource.message}\nRETRYABLE_FAILED: {attempt.error}; the task's own retries (@task(retries=N)), "
        "if any, try again"
    )
    return resource


def last_known(runtime: Runtime, meta: SkyPilotMetadata, why: str) -> Resource:
    """The task's last answer (a task never answered: QUEUED, or INITIALIZING while its launch is submitted),
    its message saying why it is not fresher. A final answer stands as it was."""
    last = runtime.last_known.get((meta.job_name, meta.batch_rank))
    if last is not None and last.phase in FINISHED:
        return last
    if last is None:
        phase = TaskExecution.QUEUED if meta.request_id else TaskExecution.INITIALIZING
        return Resource(phase=phase, message=f"SkyPilot managed job {meta.job_name}: status not known yet ({why})")
    message = f"{last.message} (last known status: {why})" if last.message else f"last known status: {why}"
    return Resource(phase=last.phase, message=message, log_links=last.log_links, custom_info=last.custom_info)


def _aborted(runtime: Runtime, meta: SkyPilotMetadata) -> bool:
    return (meta.job_name, meta.batch_rank) in runtime.aborted


def _attempt(runtime: Runtime, meta: SkyPilotMetadata) -> Optional[Attempt]:
    return runtime.launches.attempt(meta.job_name) if meta.batch_rank < 0 else None
