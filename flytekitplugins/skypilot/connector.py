"""The `skypilot` connector: create / get / delete of a Flyte task as a SkyPilot managed job."""

import asyncio
import copy
import functools
import hashlib
import os
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from flyteidl.core.execution_pb2 import TaskExecution, TaskLog
from flytekit import logger
from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta
from flytekit.extend.backend.utils import get_connector_secret
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

from . import (
    batches,
    cancel,
    job_log,
    launch_record,
    pools,
    report,
    settings,
    shared_fs,
    sky_api,
    status,
    translate,
    user_errors,
    yaml_io,
)
from .tracker import TRACKER

TASK_TYPE = "skypilot"
MAP_TASK_TYPE_VERSION = 1  # a map_task's subtasks (an ArrayNode) carry this task type version
# Importing SkyPilot in the background while another thread imports it deadlocks (its import cycles): only a
# connector server, whose other threads do not import SkyPilot, warms it up at start-up.
WARM_UP_ENV = "FLYTE_SKYPILOT_WARM_UP"
_FINISHED = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)


@dataclass
class SkyPilotMetadata(ResourceMeta):
    """Everything get / delete need; stored by propeller, so small and free of secrets."""

    job_name: str  # deterministic: from the task execution id (the output prefix in local runs)
    request_id: str  # the launch request ("" while a cluster_name task waits for its pool); get() resolves it
    output_prefix: str  # where pyflyte-execute writes outputs.pb / error.pb
    endpoint: str  # the SkyPilot API server the job was submitted to
    num_nodes: int = 1  # nodes other than the head write error.pb under <output_prefix>/node-<rank>
    outputs: Dict[str, str] = field(default_factory=dict)  # a YAML task's output names and kinds (see yaml_io)
    cluster_name: str = ""  # the pool of a cluster_name task (see pools)
    secrets: List[str] = field(default_factory=list)  # the names (never values) of the task's secrets
    batch_rank: int = -1  # a fan-out subtask's SKYPILOT_JOB_RANK in its batch (job_name is the batch's; see batches)


class SkyPilotConnector(AsyncConnectorBase):
    name = "SkyPilot Connector"

    def __init__(self, task_type_version: int = 0) -> None:
        super().__init__(task_type_name=TASK_TYPE, task_type_version=task_type_version, metadata_type=SkyPilotMetadata)
        self._submitted: Dict[str, Optional[str]] = {}  # job name -> launch request id (None: deferred)
        self._joined: Dict[str, Tuple[str, int, Optional[str]]] = {}  # subtask -> (batch, rank, request id)
        self._found: Dict[Tuple[str, int], int] = {}  # (job name, rank) -> job id, for launches of other processes
        self._deleted: Set[Tuple[str, int]] = set()  # (job name, rank) of the tasks Flyte aborted through this process
        self._reports: Dict[int, dict] = {}  # job id -> placement / duration / cost of the finished job
        self._submitting: Dict[str, threading.Lock] = defaultdict(threading.Lock)
        if os.environ.get(WARM_UP_ENV) == "1":  # a connector server (agent_service sets it): import SkyPilot now
            sky_api.warm_up()

    async def create(
        self,
        task_template: TaskTemplate,
        output_prefix: str = "",
        inputs: Optional[LiteralMap] = None,
        task_execution_metadata: Optional[TaskExecutionMetadata] = None,
        **kwargs,
    ) -> SkyPilotMetadata:
        shared_fs.open_to_job(output_prefix)
        name = job_name(task_execution_metadata, output_prefix)
        custom = task_template.custom or {}
        config = translate.task_yaml(task_template, name, secret_values(custom.get("secrets")), inputs, output_prefix)
        key = batches.batch_key(task_execution_metadata, config) if self._batches(task_template) else None
        member = copy.deepcopy(config) if key else None
        pool_yaml = pools.pool_task_yaml(config)  # before SkyPilot consumes the dict
        task = translate.sky_task(config)  # SkyPilot's own validation, before anything is launched
        secrets = list(custom.get("secrets") or [])
        if key:  # a fan-out subtask: launched with its siblings as one request
            batch, rank, request_id = await asyncio.to_thread(
                self._join_once, name, output_prefix, key, member, custom.get("pool")
            )
            return SkyPilotMetadata(
                batch, request_id or "", output_prefix, sky_api.endpoint(), 1, secrets=secrets, batch_rank=rank
            )
        submit = functools.partial(self._submit, task, name, custom, pool_yaml)
        # a YAML task without outputs never uses its output prefix (it may not even exist): no record there
        record_at = None if translate.is_yaml_task(task_template) and not custom.get("outputs") else output_prefix
        request_id = await asyncio.to_thread(self._launch_once, name, record_at, submit)
        return SkyPilotMetadata(
            name,
            request_id or "",
            output_prefix,
            sky_api.endpoint(),
            task.num_nodes,
            dict(custom.get("outputs") or {}),
            custom.get("cluster_name") or "",
            secrets,
        )

    def _batches(self, template: TaskTemplate) -> bool:
        """Whether this is a map_task subtask that may launch with its siblings (see batches)."""
        custom = template.custom or {}
        return (
            self.task_category.version == MAP_TASK_TYPE_VERSION
            and not custom.get("cluster_name")
            and not translate.is_yaml_task(template)
        )

    @staticmethod
    def _submit(task, name: str, custom: Dict, pool_yaml: Dict) -> Optional[str]:
        cluster = custom.get("cluster_name")
        if cluster:  # None while its pool is being created: the launch follows (see pools)
            return pools.LAUNCHES.launch(task, name, cluster, lambda: translate.sky_task(pool_yaml))
        return sky_api.launch(task, name, custom.get("pool"))

    def _launch_once(
        self, name: str, output_prefix: Optional[str], submit: Callable[[], Optional[str]]
    ) -> Optional[str]:
        """Propeller may repeat CreateTask for one attempt (after a timeout, say): launch its job only once."""
        with self._submitting[name]:
            if name not in self._submitted:
                self._submitted[name] = _first_launch(name, output_prefix, submit)
                if self._submitted[name]:
                    TRACKER.watch(self._submitted[name])
            return self._submitted[name]

    def _join_once(
        self, name: str, output_prefix: str, key: str, config: Dict, pool: Optional[str]
    ) -> Tuple[str, int, Optional[str]]:
        """A subtask joins one batch, however often propeller repeats its CreateTask."""
        with self._submitting[name]:
            if name not in self._joined:
                self._joined[name] = _first_join(name, output_prefix, key, config, pool)
            return self._joined[name]

    async def get(self, resource_meta: SkyPilotMetadata, **kwargs) -> Resource:
        outage = TRACKER.outage_seconds()
        if outage > settings.current().outage_deadline:
            message = (
                f"SkyPilot has been unreachable for {outage:.0f} s, past the connector's outage deadline "
                f"({settings.OUTAGE_DEADLINE_ENV}={settings.current().outage_deadline:.0f}): {TRACKER.unavailable}"
            )
            return Resource(phase=TaskExecution.RETRYABLE_FAILED, message=message)
        job_id, record = self._cached(resource_meta)  # the common case: no thread, no waiting
        if record is None:
            job_id, before_the_job = await asyncio.to_thread(self._job_id, resource_meta)
            if before_the_job is not None:
                return before_the_job
            record = await asyncio.to_thread(TRACKER.job, job_id)
        links = [TaskLog(name="SkyPilot dashboard", uri=f"{resource_meta.endpoint}/dashboard/jobs/{job_id}")]
        if record is None:
            message = f"SkyPilot managed job {job_id} submitted; waiting for its first status"
            return Resource(TaskExecution.QUEUED, _outage(message), links)
        phase, message = status.job_phase(record)
        if record.get("status") == "CANCELLED" and (resource_meta.job_name, resource_meta.batch_rank) in self._deleted:
            phase, message = TaskExecution.ABORTED, f"SkyPilot managed job {job_id} cancelled: the task was aborted"
        message = _outage(message)
        if str(record.get("status")).startswith("FAILED"):
            phase, message = await asyncio.to_thread(_failure, record, phase, message, resource_meta)
        info = None
        if phase in _FINISHED:  # where it ran, for how long, at what cost
            info = await asyncio.to_thread(self._report, record)
            message = f"{message}\n{report.summary(info)}"
        if phase == TaskExecution.SUCCEEDED and resource_meta.outputs:
            return await asyncio.to_thread(_with_outputs, message, links, resource_meta, info)
        return Resource(phase=phase, message=message, log_links=links, custom_info=info)

    def _report(self, record: dict) -> dict:
        job_id = record.get("job_id")
        if job_id not in self._reports:
            self._reports[job_id] = report.job_report(record)
        return self._reports[job_id]

    def _cached(self, meta: SkyPilotMetadata) -> Tuple[Optional[int], Optional[dict]]:
        """The job id and record the latest polling round has for this task, if it has them."""
        request_id = meta.request_id or getattr(_deferred(meta), "request_id", None)
        launch = TRACKER.cached_launch(request_id) if request_id else None
        job_id = _job_of(launch, meta.batch_rank) if launch else self._found.get((meta.job_name, meta.batch_rank))
        return job_id, TRACKER.cached_job(job_id) if job_id is not None else None

    def _job_id(self, meta: SkyPilotMetadata) -> Tuple[Optional[int], Optional[Resource]]:
        """The task's managed job id, or what to report while there is none."""
        request_id = meta.request_id
        if not request_id:
            pending = _deferred(meta)
            if pending is None:  # launched by a connector process that has restarted since
                return self._job_by_name(meta.job_name, meta.batch_rank)
            if pending.request_id is None:
                return None, _before_launch(meta, pending)
            request_id = pending.request_id
        launch = TRACKER.launch(request_id)
        if launch.job_id is None:
            phase, message = status.launch_phase(launch.state, launch.error, launch.retryable)
            return None, Resource(phase=phase, message=_outage(message))
        return _job_of(launch, meta.batch_rank), None

    def _job_by_name(self, name: str, rank: int) -> Tuple[Optional[int], Optional[Resource]]:
        if (name, rank) not in self._found:
            ids = sky_api.job_ids_by_name(name)  # a batch's jobs, by rank: its job ids ascend with the ranks
            if len(ids) <= max(rank, 0):
                message = "the connector restarted before this task's job was launched; a retry launches it"
                return None, Resource(TaskExecution.RETRYABLE_FAILED, message)
            self._found[(name, rank)] = ids[rank] if rank >= 0 else ids[-1]
        return self._found[(name, rank)], None

    async def delete(self, resource_meta: SkyPilotMetadata, **kwargs) -> None:
        name, rank = resource_meta.job_name, resource_meta.batch_rank
        self._deleted.add((name, rank))
        if rank >= 0:  # only this subtask's job: its siblings share its job name and launch request
            request_id = resource_meta.request_id or batches.BATCHES.abandon(name, rank)
            await asyncio.to_thread(cancel.cancel_member, request_id, name, rank)
            return
        request_id = resource_meta.request_id or pools.LAUNCHES.abandon(name)
        await asyncio.to_thread(cancel.cancel, request_id, name)


def _deferred(meta: SkyPilotMetadata):
    """This process's launch of the task still to come (a batch, or a cluster_name pool being created)."""
    return batches.BATCHES.pending(meta.job_name) if meta.batch_rank >= 0 else pools.LAUNCHES.pending(meta.job_name)


def _before_launch(meta: SkyPilotMetadata, pending) -> Resource:
    if meta.batch_rank >= 0:
        if pending.error:
            return Resource(
                TaskExecution.RETRYABLE_FAILED, f"SkyPilot did not take this fan-out's launch: {pending.error}"
            )
        message = (
            f"launching with the other subtasks of this fan-out as one SkyPilot request "
            f"({len(pending.commands)} so far, as job rank {meta.batch_rank})"
        )
        return Resource(TaskExecution.INITIALIZING, _outage(message))
    if pending.error:
        return Resource(TaskExecution.FAILED, f"SkyPilot pool {meta.cluster_name!r}: {pending.error}")
    message = f"waiting for SkyPilot pool {meta.cluster_name!r} (cluster_name) to exist; the job launches on it then"
    return Resource(TaskExecution.WAITING_FOR_RESOURCES, _outage(message))


def _job_of(launch, rank: int) -> Optional[int]:
    """The job of this rank in a batched launch (the only job of a launch that is not batched)."""
    if rank < 0:
        return launch.job_id
    return launch.job_ids[rank] if len(launch.job_ids) > rank else None


def _first_join(
    name: str, output_prefix: str, key: str, config: Dict, pool: Optional[str]
) -> Tuple[str, int, Optional[str]]:
    """The subtask's batch, rank and launch request: an earlier connector process's (see launch_record), or
    a place in this process's open batch."""
    earlier = launch_record.read(output_prefix, name)
    if earlier is not None and earlier.get("batch"):
        batch, rank = earlier["batch"], int(earlier["rank"])
        if earlier.get("request_id"):
            return batch, rank, earlier["request_id"]
        if len(sky_api.job_ids_by_name(batch)) > rank:  # launched, the record not updated
            return batch, rank, ""
    batch, rank = batches.BATCHES.join(key, name, output_prefix, config, pool)
    launch_record.write(output_prefix, name, None, batch=batch, rank=rank)
    return batch, rank, None


def _first_launch(name: str, output_prefix: Optional[str], submit: Callable[[], Optional[str]]) -> Optional[str]:
    """The attempt's launch request id: an earlier connector process's (see launch_record), or a new one.
    "" means SkyPilot has a job of this name whose launch request is unknown: get finds it by name. Without an
    output prefix to keep a record in, every first create asks SkyPilot by name."""
    earlier = launch_record.read(output_prefix, name) if output_prefix else {"job_name": name, "request_id": None}
    if earlier is not None:
        if earlier.get("request_id"):
            logger.info(f"managed job {name} was launched before (request {earlier['request_id']}): not again")
            return earlier["request_id"]
        found = sky_api.launch_request_named(name)  # the connector stopped between launch and record
        if found is None and sky_api.job_ids_by_name(name):
            found = ""
        if found is not None:
            logger.info(f"managed job {name} found in SkyPilot after a connector restart: not launched again")
            return found
    if output_prefix:
        launch_record.write(output_prefix, name, None)
    request_id = submit()
    if request_id:
        if output_prefix:
            launch_record.write(output_prefix, name, request_id)
        logger.info(f"SkyPilot launch request {request_id} submitted for managed job {name}")
    return request_id


def _failure(record: dict, phase: int, message: str, meta: SkyPilotMetadata) -> Tuple[int, str]:
    """A failed job's phase and message: the user's own error (its kind decides on retries) and the end of the
    job's log; RUNNING for one more poll while SkyPilot is still handing that log over."""
    if record.get("status") == "FAILED":  # the user's program failed: its error.pb says whether to retry
        phase, message = user_errors.phase_and_message(phase, message, meta.output_prefix, meta.num_nodes)
    tail = job_log.TAILS.get(record["job_id"], meta.secrets)
    if tail is None:
        return TaskExecution.RUNNING, f"{message}\n(collecting the end of the job's log)"
    return phase, f"{message}\n{tail}" if tail else message


def secret_values(names: Optional[List[str]]) -> Dict[str, str]:
    """The connector's own values for the secret names a task asks for (names only ever leave this function)."""
    values = {}
    for name in names or []:
        try:
            values[name] = get_connector_secret(name)
        except ValueError:
            raise ValueError(
                f"The task asks for secret {name!r}, which the connector does not have: give the connector an "
                f"environment variable _FSEC_{name.upper()} or a file /etc/secrets/{name.lower()} (in a local run, "
                f"an environment variable {name} works too)"
            ) from None
    return values


def _outage(message: str) -> str:
    """Says so when the status shown is the last known one because SkyPilot could not be asked."""
    return f"{message} (last known status: {TRACKER.unavailable})" if TRACKER.unavailable else message


def job_name(meta: Optional[TaskExecutionMetadata], output_prefix: str) -> str:
    """A managed-job name unique to one attempt of one task execution, readable in SkyPilot's queue."""
    if meta is not None and meta.task_execution_id is not None:
        tid = meta.task_execution_id
        node = tid.node_execution_id
        key = f"{node.execution_id.project}/{node.execution_id.domain}/{node.execution_id.name}/{node.node_id}"
        key = f"{key}/{tid.task_id.name}/{tid.retry_attempt}"
        readable = f"{node.execution_id.name}-{node.node_id}-{tid.retry_attempt}"
    else:
        key, readable = output_prefix, "local"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9-]+", "-", readable.lower()).strip("-")[:40]
    return f"flyte-{readable}-{digest}"


def _with_outputs(message: str, links: List[TaskLog], meta: SkyPilotMetadata, info: Optional[dict]) -> Resource:
    """A YAML task's success, with the outputs its job wrote (or its failure to write them)."""
    try:
        outputs = yaml_io.read_outputs(meta.output_prefix, meta.outputs)
    except yaml_io.MissingOutput as e:
        return Resource(TaskExecution.FAILED, f"{message}\nbut {e}", links, custom_info=info)
    return Resource(TaskExecution.SUCCEEDED, message, links, outputs=outputs, custom_info=info)


ConnectorRegistry.register(SkyPilotConnector())
ConnectorRegistry.register(SkyPilotConnector(task_type_version=MAP_TASK_TYPE_VERSION))
