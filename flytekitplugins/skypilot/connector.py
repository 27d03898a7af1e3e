"""The `skypilot` connector: create / get / delete of a Flyte task as a SkyPilot managed job."""

import asyncio
import copy
import functools
import hashlib
import re
from typing import Dict, List, Optional

from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource
from flytekit.extend.backend.utils import get_connector_secret
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

from . import pools, shared_fs, sky_api, status, translate
from .resource_meta import SkyPilotMetadata
from .runtime import Runtime

TASK_TYPE = "skypilot"
# Every SkyPilot task template carries task type version 1, the version flytekit gives a map_task's subtasks:
# flytepropeller 1.16 keeps one version per task type from ListAgents (client.go updateRegistry), so plain tasks
# and map subtasks must share it to reach this connector. Version 0 stays registered for templates of earlier
# releases (routed here by Flyte releases that key connectors by name and version).
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
        shared_fs.open_to_job(output_prefix)
        name = job_name(task_execution_metadata, output_prefix)
        custom = task_template.custom or {}
        config = translate.task_yaml(task_template, name, secret_values(custom.get("secrets")), inputs, output_prefix)
        key = self.runtime.batches.key(task_execution_metadata, config) if is_map_subtask(task_template) else None
        # the execution's envs (a map subtask's array index among them); a batch's jobs each get their own
        config = translate.with_execution_envs(config, execution_envs(task_execution_metadata), in_run=bool(key))
        member = copy.deepcopy(config) if key else None
        pool_yaml = pools.pool_task_yaml(config)  # before SkyPilot consumes the dict
        task = translate.sky_task(config)  # SkyPilot's own validation, before anything is launched
        secrets = list(custom.get("secrets") or [])
        if key:  # a fan-out subtask: launched with its siblings as one request
            join = functools.partial(self.runtime.launches.join, name, output_prefix, key, member, custom.get("pool"))
            batch, rank, request_id = await asyncio.to_thread(join)
            return SkyPilotMetadata(
                job_name=batch,
                request_id=request_id or "",
                output_prefix=output_prefix,
                endpoint=sky_api.endpoint(),
                num_nodes=1,
                secrets=secrets,
                batch_rank=rank,
            )
        submit = functools.partial(self._submit, task, name, custom, pool_yaml)
        # a YAML task without outputs never uses its output prefix (it may not even exist): no record there
        record_at = None if translate.is_yaml_task(task_template) and not custom.get("outputs") else output_prefix
        request_id = await asyncio.to_thread(self.runtime.launches.launch, name, record_at, submit)
        return SkyPilotMetadata(
            job_name=name,
            request_id=request_id or "",
            output_prefix=output_prefix,
            endpoint=sky_api.endpoint(),
            num_nodes=task.num_nodes,
            outputs=dict(custom.get("outputs") or {}),
            cluster_name=custom.get("cluster_name") or "",
            secrets=secrets,
        )

    def _submit(self, task, name: str, custom: Dict, pool_yaml: Dict) -> Optional[str]:
        cluster = custom.get("cluster_name")
        if cluster:  # None while its pool is being created: the launch follows (see pools)
            return self.runtime.pools.launch(task, name, cluster, lambda: translate.sky_task(pool_yaml))
        return self.runtime.sky.launch(task, name, custom.get("pool"))

    async def get(self, resource_meta: SkyPilotMetadata, **kwargs) -> Resource:
        runtime = self.runtime
        past = runtime.results.past_outage_deadline()
        if past is not None:
            return past
        job_id, record = runtime.launches.cached(resource_meta)  # the common case: no thread, no waiting
        if record is None:
            job_id, waiting = await asyncio.to_thread(runtime.launches.job_id, resource_meta)
            if waiting is not None:
                return runtime.results.before_the_job(resource_meta, waiting)
            record = await asyncio.to_thread(runtime.tracker.job, job_id)
        aborted = (resource_meta.job_name, resource_meta.batch_rank) in runtime.aborted
        of_job = functools.partial(runtime.results.of_job, job_id, record, resource_meta, aborted)
        # a finished job's result may read its log, prices and outputs: off the event loop
        return await asyncio.to_thread(of_job) if status.job_finished(record) else of_job()

    async def delete(self, resource_meta: SkyPilotMetadata, **kwargs) -> None:
        runtime, name, rank = self.runtime, resource_meta.job_name, resource_meta.batch_rank
        runtime.aborted.add((name, rank))
        if rank >= 0:  # only this subtask's job: its siblings share its job name and launch request
            request_id = resource_meta.request_id or runtime.batches.abandon(name, rank)
            await asyncio.to_thread(runtime.cancels.cancel_member, request_id, name, rank)
            return
        request_id = resource_meta.request_id or runtime.pools.abandon(name)
        await asyncio.to_thread(runtime.cancels.cancel, request_id, name)


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


def register() -> None:
    """Registers the connector for task type versions 0 (earlier releases' templates) and 1 (this release's
    tasks and every map_task subtask; listed last, which flytepropeller 1.16 keeps), on one shared Runtime: one
    tracker, one polling round, one set of batches for the whole process."""
    runtime = Runtime()
    ConnectorRegistry.register(SkyPilotConnector(runtime=runtime))
    ConnectorRegistry.register(SkyPilotConnector(task_type_version=TASK_TYPE_VERSION, runtime=runtime))


register()
