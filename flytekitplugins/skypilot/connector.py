"""The `skypilot` connector: create / get / delete of a Flyte task as a SkyPilot managed job."""

import contextlib
import copy
import dataclasses
import functools
import hashlib
import re
import time
from concurrent.futures import Future
from typing import Dict, List, Optional, Tuple

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import logger
from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

from . import answers, bounded, credentials, shared_fs, sky_api, translate
from .resource_meta import SkyPilotMetadata
from .results import FINISHED
from .runtime import Runtime

TASK_TYPE = "skypilot"
# Every SkyPilot task template carries task type version 1, the version flytekit gives a map_task's subtasks:
# flytepropeller 1.16 keeps one version per task type from ListAgents, the last listed (client.go
# getConnectorRegistry at v1.16.8; agent_service/routing.py), so plain tasks and map subtasks must share it to
# reach this connector. Version 0 stays registered for templates of earlier releases (routed here when this
# connector is propeller's defaultConnector, and by the v2 backend's registry keyed by name and version).
TASK_TYPE_VERSION = 1
MAP_TASK_TYPE_VERSION = TASK_TYPE_VERSION
MAP_EXECUTE = "pyflyte-map-execute"  # the command of a map_task's subtask (flytekit's ArrayNodeMapTask)


class SkyPilotConnector(AsyncConnectorBase):
    """Flyte's connector contract; the state behind it is its Runtime's (a default one from the environment)."""

    name = "SkyPilot Connector"

    def __init__(self, task_type_version: int = 0, runtime: Optional[Runtime] = None) -> None:
        super().__init__(task_type_name=TASK_TYPE, task_type_version=task_type_version, metadata_type=SkyPilotMetadata)
        self.runtime = runtime if runtime is not None else Runtime()

    async def create(
        self,
        task_template: TaskTemplate,
        output_prefix: str = "",
        inputs: Optional[LiteralMap] = None,
        task_execution_metadata: Optional[TaskExecutionMetadata] = None,
        **kwargs,
    ) -> SkyPilotMetadata:
        with self._masking((task_template.custom or {}).get("secrets")):
            meta = await self._create(task_template, output_prefix, inputs, task_execution_metadata)
        self.runtime.retention.touch(_key(meta), meta)
        return meta

    async def _create(
        self,
        task_template: TaskTemplate,
        output_prefix: str,
        inputs: Optional[LiteralMap],
        task_execution_metadata: Optional[TaskExecutionMetadata],
    ) -> SkyPilotMetadata:
        """Returns within bounded.CREATE_BUDGET_S: a launch SkyPilot is slow to take goes on in the background
        (get reports it); only a task SkyPilot refuses (its own validation) fails the create."""
        started, runtime = time.monotonic(), self.runtime
        shared_fs.open_to_job(output_prefix)
        name = job_name(task_execution_metadata, output_prefix)
        custom = task_template.custom or {}
        local = task_execution_metadata is None
        secrets = translate.secret_values(custom.get("secrets"), runtime.settings.storage_variables(), local)
        config = translate.task_yaml(task_template, name, secrets, inputs, output_prefix)
        key = runtime.batches.key(task_execution_metadata, config) if is_map_subtask(task_template) else None
        # the execution's envs (a map subtask's array index among them); a batch's jobs each get their own
        config = translate.with_execution_envs(config, execution_envs(task_execution_metadata), in_run=bool(key))
        config = translate.with_api_server_access(config, runtime.settings.api_server_access)
        meta = SkyPilotMetadata(
            job_name=name,
            request_id="",
            output_prefix=output_prefix,
            endpoint=runtime.settings.endpoint or sky_api.endpoint(),
            num_nodes=int(config.get("num_nodes") or 1),
            outputs=dict(custom.get("outputs") or {}),
            cluster_name=custom.get("cluster_name") or "",
            secrets=list(custom.get("secrets") or []),
        )
        if key:  # a fan-out subtask: launched with its siblings as one request
            return await self._join(meta, key, config, custom.get("pool"), started)
        earlier = earlier_attempts(task_execution_metadata)
        for earlier_name in earlier:  # propeller never deletes an attempt whose create failed or timed out
            runtime.launches.abandon(earlier_name)
        runtime.cancels.cancel_earlier(earlier)
        # a YAML task without outputs never uses its output prefix (it may not even exist): no record there
        record_at = None if translate.is_yaml_task(task_template) and not custom.get("outputs") else output_prefix
        plan = translate.launch_plan(config, custom)
        runtime.retention.touch(_key(meta), meta)  # a create that fails leaves its attempt behind: forgotten too
        return await self._launch(meta, record_at, plan, secrets, local, started)

    async def _launch(
        self, meta: SkyPilotMetadata, record_at: Optional[str], plan: Dict, secrets: Dict, local: bool, started: float
    ):
        """The meta with the launch request id if SkyPilot takes the launch in time, else with none: the launch
        goes on in the background (a local run, with a user watching, fails at once if SkyPilot is unreachable)."""
        launches, name = self.runtime.launches, meta.job_name
        first = launches.launch(name, record_at, plan, secrets)
        done, request_id = False, None
        while not done and time.monotonic() - started < bounded.CREATE_BUDGET_S:
            done, request_id = await bounded.within(first, 0.05)
            if launches.attempt(name).unreachable:  # no use waiting: the background keeps trying
                break
        unreachable = launches.attempt(name).unreachable
        if not done and unreachable and local:  # nothing reached SkyPilot: say so now
            launches.abandon(name)
            raise sky_api.SkyPilotUnavailable(unreachable)
        if not done:
            logger.warning(f"SkyPilot has not taken the launch of {name} yet: it goes on in the background")
        return dataclasses.replace(meta, request_id=request_id or "")

    async def _join(self, meta: SkyPilotMetadata, key: str, config: Dict, pool: Optional[str], started: float):
        """A subtask's place in its batch; one that cannot be had in time is given up (its rank cancelled once
        launched) and the create fails, launching nothing."""
        name, prefix, launches = meta.job_name, meta.output_prefix, self.runtime.launches
        join = functools.partial(launches.join, name, prefix, key, copy.deepcopy(config), pool)
        future = self.runtime.flights.start(("join", name), join)
        done, joined = await bounded.within(future, bounded.CREATE_BUDGET_S - (time.monotonic() - started))
        if not done:
            future.add_done_callback(functools.partial(self._given_up, meta))
            raise sky_api.SkyPilotUnavailable(f"the launch record of {name} could not be read in time ({prefix})")
        batch, rank, request_id = joined
        return dataclasses.replace(meta, job_name=batch, request_id=request_id or "", num_nodes=1, batch_rank=rank)

    def _given_up(self, meta: SkyPilotMetadata, join: Future) -> None:
        """A join that finished after its create gave up: its rank is cancelled once launched, then forgotten."""
        if join.exception() is None:
            batch, rank, _ = join.result()
            self.runtime.batches.abandon(batch, rank)
            member = dataclasses.replace(meta, job_name=batch, request_id="", num_nodes=1, batch_rank=rank)
            self.runtime.retention.touch(_key(member), member, finished=True)

    async def get(self, resource_meta: SkyPilotMetadata, **kwargs) -> Resource:
        with self._masking(resource_meta.secrets):
            answer = await self._get(resource_meta)
        if answer.message:
            answer = dataclasses.replace(answer, message=self._masked(answer.message, resource_meta.secrets))
        self.runtime.retention.touch(_key(resource_meta), resource_meta, finished=answer.phase in FINISHED)
        return answer

    async def _get(self, resource_meta: SkyPilotMetadata) -> Resource:
        """Returns within bounded.GET_BUDGET_S and never raises: when it cannot know in time, the last known
        phase (or, for a task never seen, QUEUED / INITIALIZING), saying why."""
        runtime, key = self.runtime, (resource_meta.job_name, resource_meta.batch_rank)
        try:
            answer = answers.now(runtime, resource_meta)  # the common case: no thread, no waiting
        except Exception:  # a failed GetTask counts against the task: the blocking path answers instead
            logger.exception(f"GetTask of {resource_meta.job_name} failed from memory")
            answer = None
        if answer is None:
            future = runtime.flights.start(("get", *key), functools.partial(answers.blocking, runtime, resource_meta))
            try:
                done, answer = await bounded.within(future, bounded.GET_BUDGET_S)
            except Exception as e:  # a failed GetTask counts against the task: report the last known phase
                logger.exception(f"GetTask of {resource_meta.job_name} failed")
                return answers.last_known(runtime, resource_meta, f"the connector could not find out: {e}")
            if not done:
                why = f"no answer from SkyPilot within {bounded.GET_BUDGET_S:.1f} s; still asking"
                return answers.last_known(runtime, resource_meta, why)
        runtime.last_known[key] = answer
        return answer

    async def delete(self, resource_meta: SkyPilotMetadata, **kwargs) -> None:
        with self._masking(resource_meta.secrets):
            await self._delete(resource_meta)

    async def _delete(self, resource_meta: SkyPilotMetadata) -> None:
        """Idempotent; returns within bounded.DELETE_BUDGET_S, or raises (propeller retries it) with the cancel
        carried on in the background."""
        runtime, name, rank = self.runtime, resource_meta.job_name, resource_meta.batch_rank
        runtime.retention.touch(_key(resource_meta), resource_meta, finished=True)
        known = runtime.last_known.get((name, rank))
        if known is not None and known.phase == TaskExecution.SUCCEEDED:
            return  # a job seen to succeed has nothing left to cancel (a repeated abort, a client deleting what ran)
        runtime.aborted.add((name, rank))
        future = runtime.flights.start(("delete", name, rank), functools.partial(self._cancel, resource_meta))
        done, _ = await bounded.within(future, bounded.DELETE_BUDGET_S)
        if not done:
            runtime.cancels.later(resource_meta.request_id, name, rank)
            raise sky_api.SkyPilotUnavailable(
                f"SkyPilot did not take the cancel of {name} in time; the connector keeps cancelling it in the "
                "background and a repeated delete tries again"
            )

    def _masked(self, text: str, secrets: Optional[List[str]]) -> str:
        return credentials.masked(text, secrets or [], self.runtime.settings.storage_secrets)

    @contextlib.contextmanager
    def _masking(self, secrets: Optional[List[str]]):
        """Whatever fails in here leaves with the task's and the storage secrets' values masked (SkyPilot may
        quote a value it substituted, e.g. in a file mount)."""
        try:
            yield
        except Exception as e:
            text = str(e)
            clean = self._masked(text, secrets)
            if clean == text:
                raise
            try:
                masked = type(e)(clean)
            except Exception:
                masked = RuntimeError(clean)
            raise masked from None

    def _cancel(self, meta: SkyPilotMetadata) -> None:
        runtime, name, rank = self.runtime, meta.job_name, meta.batch_rank
        if rank >= 0:  # only this subtask's job: its siblings share its job name and launch request
            request_id = meta.request_id or runtime.batches.abandon(name, rank)
            runtime.cancels.cancel_member(request_id, name, rank)
            return
        current = runtime.launches.abandon(name)  # a launch still out is cancelled when it comes
        runtime.cancels.cancel(current or meta.request_id or runtime.pools.abandon(name), name)


def _key(meta: SkyPilotMetadata) -> Tuple[str, int]:
    """What the connector's per-task state is keyed by (see retention)."""
    return meta.job_name, meta.batch_rank


def is_map_subtask(template: TaskTemplate) -> bool:
    """Whether this is a map_task subtask that may launch with its siblings (see batches): its command is
    pyflyte-map-execute (the task type version no longer tells, see TASK_TYPE_VERSION)."""
    custom = template.custom or {}
    args = list(template.container.args) if template.container is not None else []
    return MAP_EXECUTE in args and not custom.get("cluster_name") and not translate.is_yaml_task(template)


def execution_envs(meta: Optional[TaskExecutionMetadata]) -> Dict[str, str]:
    """What propeller passes in `environment_variables`: the execution's envs and a map subtask's array index
    (FLYTE_K8S_ARRAY_INDEX, named by BATCH_JOB_ARRAY_INDEX_VAR_NAME), which pyflyte-map-execute reads."""
    return dict(meta.environment_variables or {}) if meta is not None else {}


secret_values = translate.secret_values  # where earlier releases had it


def earlier_attempts(meta: Optional[TaskExecutionMetadata]) -> List[str]:
    """The job names of this node's earlier attempts (same execution, node and task; retry attempts 0..k-1)."""
    if meta is None or meta.task_execution_id is None:
        return []
    tid = meta.task_execution_id
    return [_attempt_name(tid, retry) for retry in range(tid.retry_attempt)]


def job_name(meta: Optional[TaskExecutionMetadata], output_prefix: str) -> str:
    """A managed-job name unique to one attempt of one task execution, readable in SkyPilot's queue."""
    if meta is not None and meta.task_execution_id is not None:
        return _attempt_name(meta.task_execution_id, meta.task_execution_id.retry_attempt)
    return _named(output_prefix, "local")


def _attempt_name(tid, retry: int) -> str:
    node = tid.node_execution_id
    key = f"{node.execution_id.project}/{node.execution_id.domain}/{node.execution_id.name}/{node.node_id}"
    return _named(f"{key}/{tid.task_id.name}/{retry}", f"{node.execution_id.name}-{node.node_id}-{retry}")


def _named(key: str, readable: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9-]+", "-", readable.lower()).strip("-")[:40]
    return f"flyte-{readable}-{digest}"


def register() -> None:
    """Registers the connector for task type versions 0 (earlier releases' templates) and 1 (this release's
    tasks and every map_task subtask; listed last, which flytepropeller 1.16 keeps), on one shared Runtime: one
    tracker, one polling round, one set of batches for the whole process."""
    runtime = Runtime()
    ConnectorRegistry.register(SkyPilotConnector(runtime=runtime))
    ConnectorRegistry.register(SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=runtime))


register()
