"""The Resource get returns for a task: its job's phase and message (see status) with the user's error, the end
of the job's log, where it ran and what it cost, a YAML task's outputs, and what an outage leaves of them."""

import time
from typing import Any, Dict, List, Optional, Set, Tuple

from flyteidl.core.execution_pb2 import TaskExecution, TaskLog
from flytekit.extend.backend.base_connector import Resource

from . import launch_once, report, status, user_errors, yaml_io
from .job_log import Tails
from .launch_once import Attempt
from .resource_meta import SkyPilotMetadata
from .settings import OUTAGE_DEADLINE_ENV, ConnectorSettings
from .tracker import Launch, Tracker

FINISHED = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)


class Results:
    def __init__(self, tracker: Tracker, tails: Tails, settings: ConnectorSettings) -> None:
        self._tracker = tracker
        self._tails = tails
        self._settings = settings
        self._reports: Dict[int, dict] = {}  # job id -> placement / duration / cost of the finished job
        self._jobs: Dict[Tuple[str, int], Set[int]] = {}  # (job name, rank) -> its jobs with a report or log tail

    def forget(self, key: Tuple[str, int]) -> None:
        """Drops the reports and log tails of a done task's jobs (see retention)."""
        for job_id in self._jobs.pop(key, ()):
            self._reports.pop(job_id, None)
            self._tails.forget(job_id)

    def held(self) -> Dict[str, int]:
        return {"results.reports": len(self._reports), "results.jobs": len(self._jobs)}

    def _note(self, meta: SkyPilotMetadata, job_id: int) -> None:
        self._jobs.setdefault((meta.job_name, meta.batch_rank), set()).add(job_id)

    def past_outage_deadline(self) -> Optional[Resource]:
        """RETRYABLE_FAILED once SkyPilot has been unreachable for longer than the outage deadline."""
        outage, deadline = self._tracker.outage_seconds(), self._settings.outage_deadline
        if outage <= deadline:
            return None
        message = (
            f"SkyPilot has been unreachable for {outage:.0f} s, past the connector's outage deadline "
            f"({OUTAGE_DEADLINE_ENV}={deadline:.0f}): {self._tracker.unavailable}"
        )
        return Resource(phase=TaskExecution.RETRYABLE_FAILED, message=message)

    def outage(self, message: str) -> str:
        """Says so when the status shown is the last known one because SkyPilot could not be asked."""
        unavailable = self._tracker.unavailable
        return f"{message} (last known status: {unavailable})" if unavailable else message

    def before_the_job(self, meta: SkyPilotMetadata, waiting: Any, attempt: Optional[Attempt] = None) -> Resource:
        """What a task without a job id reports: see LaunchOnce.job_id for what it may be waiting on."""
        info = {"job_name": meta.job_name, "relaunches": attempt.relaunches if attempt else 0}
        if waiting == launch_once.NO_JOB:
            message = "the connector restarted before this task's job was launched; a retry launches it"
            return Resource(phase=TaskExecution.RETRYABLE_FAILED, message=message, custom_info=info)
        if isinstance(waiting, Attempt):
            return self._launching(waiting, info)
        if isinstance(waiting, Launch):
            phase, message = status.launch_phase(waiting.state, waiting.error, waiting.retryable)
            message = f"{message} ({self.relaunch_note(attempt)})" if attempt and attempt.relaunches else message
            return Resource(phase=phase, message=self.outage(message), custom_info=info)
        return self._before_launch(meta, waiting)

    def relaunch_note(self, attempt: Attempt) -> str:
        return f"relaunch {attempt.relaunches} of {self._settings.infra_relaunches}, after {attempt.why}"

    def _launching(self, attempt: Attempt, info: dict) -> Resource:
        """An attempt whose launch SkyPilot has not taken yet (slow, unreachable, relaunching), or refused."""
        out = time.monotonic() - attempt.since
        if attempt.error is None and out > self._settings.outage_deadline:  # a launch SkyPilot never answered
            attempt.abandoned = True  # cancelled should it still come
            attempt.error, attempt.retryable = f"SkyPilot did not answer the launch for {out:.0f} s", True
        if attempt.error:
            phase = TaskExecution.RETRYABLE_FAILED if attempt.retryable else TaskExecution.FAILED
            return Resource(phase=phase, message=f"SkyPilot could not launch the managed job: {attempt.error}")
        if attempt.relaunches:
            phase = TaskExecution.WAITING_FOR_RESOURCES
            message = f"relaunching after {attempt.why} ({attempt.relaunches} of {self._settings.infra_relaunches})"
        else:
            phase, message = TaskExecution.INITIALIZING, "submitting the managed job's launch to SkyPilot"
        message = f"{message}: SkyPilot has not taken it yet ({out:.0f} s)"
        if attempt.unreachable:
            message += f"; {attempt.unreachable}; the connector keeps trying until the outage deadline"
        return Resource(phase=phase, message=message, custom_info={**info, "launch": "submitting"})

    def _before_launch(self, meta: SkyPilotMetadata, pending) -> Resource:
        if meta.batch_rank >= 0:
            if pending.error:
                message = f"SkyPilot did not take this fan-out's launch: {pending.error}"
                return Resource(phase=TaskExecution.RETRYABLE_FAILED, message=message)
            message = (
                f"launching with the other subtasks of this fan-out as one SkyPilot request "
                f"({len(pending.commands)} so far, as job rank {meta.batch_rank})"
            )
            return Resource(phase=TaskExecution.INITIALIZING, message=self.outage(message))
        if pending.error:
            return Resource(phase=TaskExecution.FAILED, message=f"SkyPilot pool {meta.cluster_name!r}: {pending.error}")
        message = (
            f"waiting for SkyPilot pool {meta.cluster_name!r} (cluster_name) to exist; the job launches on it then"
        )
        return Resource(phase=TaskExecution.WAITING_FOR_RESOURCES, message=self.outage(message))

    def of_job(
        self, job_id: int, record: Optional[dict], meta: SkyPilotMetadata, aborted: bool, attempt: Optional[Attempt]
    ) -> Resource:
        """The task's Resource from its job's latest record; blocking (log tail, prices, outputs) only once the
        job has finished. `aborted`: Flyte deleted the task, so a CANCELLED job is its abort. Where the job is,
        how long it ran and its cost are in the log link's name and custom_info too: Flyte shows those always."""
        uri = f"{meta.endpoint}/dashboard/jobs/{job_id}"
        if record is None:
            links = [TaskLog(name=f"SkyPilot job {job_id} (submitted)", uri=uri)]
            message = f"SkyPilot managed job {job_id} submitted; waiting for its first status"
            return Resource(phase=TaskExecution.QUEUED, message=self.outage(message), log_links=links)
        phase, message = status.job_phase(record)
        if attempt is not None and attempt.relaunches:
            message = f"{message} ({self.relaunch_note(attempt)})"
        if record.get("status") == "CANCELLED" and aborted:
            phase, message = TaskExecution.ABORTED, f"SkyPilot managed job {job_id} cancelled: the task was aborted"
        message = self.outage(message)
        if str(record.get("status")).startswith("FAILED"):
            phase, message = self._failure(record, phase, message, meta)
        finished = phase in FINISHED
        info = dict(self._report(record, meta) if finished else report.placement(record))  # with prices once finished
        info["relaunches"] = attempt.relaunches if attempt is not None else 0
        if finished:  # where it ran, for how long, at what cost
            message = f"{message}\n{report.summary(info)}"
        links = [TaskLog(name=report.link_name(info, finished), uri=uri)]
        if phase == TaskExecution.SUCCEEDED and meta.outputs:
            return _with_outputs(message, links, meta, info)
        return Resource(phase=phase, message=message, log_links=links, custom_info=info)

    def _failure(self, record: dict, phase: int, message: str, meta: SkyPilotMetadata) -> Tuple[int, str]:
        """A failed job's phase and message: the user's own error (its kind decides on retries) and the end of the
        job's log; RUNNING for one more poll while SkyPilot is still handing that log over."""
        if record.get("status") == "FAILED":  # the user's program failed: its error.pb says whether to retry
            phase, message = user_errors.phase_and_message(phase, message, meta.output_prefix, meta.num_nodes)
        self._note(meta, record["job_id"])
        tail = self._tails.get(record["job_id"], meta.secrets)
        if tail is None:
            return TaskExecution.RUNNING, f"{message}\n(collecting the end of the job's log)"
        return phase, f"{message}\n{tail}" if tail else message

    def _report(self, record: dict, meta: SkyPilotMetadata) -> dict:
        job_id = record.get("job_id")
        self._note(meta, job_id)
        if job_id not in self._reports:
            self._reports[job_id] = report.job_report(record)
        return self._reports[job_id]


def _with_outputs(message: str, links: List[TaskLog], meta: SkyPilotMetadata, info: Optional[dict]) -> Resource:
    """A YAML task's success, with the outputs its job wrote (or its failure to write them)."""
    try:
        outputs = yaml_io.read_outputs(meta.output_prefix, meta.outputs)
    except yaml_io.MissingOutput as e:
        return Resource(phase=TaskExecution.FAILED, message=f"{message}\nbut {e}", log_links=links, custom_info=info)
    return Resource(phase=TaskExecution.SUCCEEDED, message=message, log_links=links, outputs=outputs, custom_info=info)
