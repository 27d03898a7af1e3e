"""flytepropeller 1.16 around a connector, as its Go source does it (each function cites the file and function it
mirrors, under flyteplugins/go/tasks/ and flytepropeller/pkg/controller/nodes/array/): render the template, write
inputs.pb, name the attempt, create it once under a deadline, resync it with GetTask counting failures, map the
phases as propeller shows them, retry, and create map subtasks as an ArrayNode does."""

import asyncio
import dataclasses
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.data_persistence import FileAccessProvider
from flytekit.core.type_engine import TypeEngine
from flytekit.core.utils import load_proto_from_file, write_proto_to_file
from flytekit.extend.backend.utils import render_task_template
from flytekit.models.core.identifier import (
    Identifier,
    NodeExecutionIdentifier,
    ResourceType,
    TaskExecutionIdentifier,
    WorkflowExecutionIdentifier,
)
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import code_bundle, shared_fs
from tests.support import figures

# Where attempts keep their data: None, a directory under the shared directory (stand-in tests); the bed's tests
# set the object store's prefix (tests/bed/conftest.py), as a Flyte deployment keeps data in its bucket and ships
# the code as a fast-registered bundle there.
DATA_PREFIX: Optional[str] = None


def _store() -> FileAccessProvider:
    return FileAccessProvider(tempfile.mkdtemp(prefix="propeller-"), DATA_PREFIX or tempfile.gettempdir())


def _new_prefix(*parts: str) -> str:
    if DATA_PREFIX:
        return "/".join([DATA_PREFIX.rstrip("/"), *parts])
    path = os.path.join(shared_fs.run_data_dir(), *parts)
    os.makedirs(path, exist_ok=True)
    return path


def _put_literals(literals: LiteralMap, uri: str) -> None:
    local = os.path.join(tempfile.mkdtemp(prefix="propeller-"), "inputs.pb")
    write_proto_to_file(literals.to_flyte_idl(), local)
    _store().put_data(local, uri)


def _template(task, entity) -> TaskTemplate:
    """The template as registered: with the store, fast-registered (`pyflyte-fast-execute` fetches the code bundle
    flytekit uploaded, flytekit tools/translator.py `prefix_with_fast_execute`); on_host jobs get this interpreter,
    and with a shared directory the source root too."""
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    if DATA_PREFIX:
        fast = code_bundle.fast_settings(task._source_root(), _store())
        settings = dataclasses.replace(settings, fast_serialization_settings=fast)
    template = get_serializable({}, settings, entity).template
    if task.task_config.on_host:
        env = shared_fs.host_env(None if DATA_PREFIX else task._source_root())
        template.container._env = {**(template.container.env or {}), **env}
    return template


def prepare(
    task, inputs: Dict[str, Any], retry: int = 0, execution: Optional[str] = None, node: str = "n0"
) -> Tuple[TaskTemplate, str, TaskExecutionMetadata]:
    """A rendered template, an output prefix holding inputs.pb, and the metadata of one task attempt."""
    template = _template(task, task)
    output_prefix = _new_prefix(uuid.uuid4().hex[:8])
    ctx = FlyteContextManager.current_context()
    _put_literals(TypeEngine.dict_to_literal_map(ctx, inputs, task.get_input_types()), f"{output_prefix}/inputs.pb")
    template = render_task_template(template, output_prefix)
    return template, output_prefix, execution_metadata(execution or f"e{uuid.uuid4().hex[:10]}", node, retry)


def prepare_map_subtask(
    mapped,
    items: Dict[str, List[Any]],
    index: int,
    execution: str,
    retry: int = 0,
    envs: Optional[Dict[str, str]] = None,
) -> Tuple[TaskTemplate, str, LiteralMap, TaskExecutionMetadata]:
    """One subtask of `map_task(...)` as flytepropeller 1.16's ArrayNode creates it (flytepropeller
    pkg/controller/nodes/array: node_execution_context.go `newStaticInputReader` keeps the ArrayNode's input
    paths while returning the element; execution_context.go `newArrayExecutionContext` adds the index variables):
    the template flytekit serialises (task type version 1, pyflyte-map-execute), its `--inputs` rendered to the
    whole list's inputs.pb, CreateTaskRequest.inputs the element, environment_variables the execution's envs plus
    BATCH_JOB_ARRAY_INDEX_VAR_NAME=FLYTE_K8S_ARRAY_INDEX and FLYTE_K8S_ARRAY_INDEX=<index>, and the subtask's own
    output prefix and task execution id. Returns (template, output prefix, element inputs, metadata)."""
    task = mapped.python_function_task
    template = _template(task, mapped)
    node_dir = _new_prefix(f"{execution}-n0")
    list_inputs = f"{node_dir}/inputs.pb"
    ctx = FlyteContextManager.current_context()
    if not _store().exists(list_inputs):
        _put_literals(TypeEngine.dict_to_literal_map(ctx, items, mapped.python_interface.inputs), list_inputs)
    output_prefix = _new_prefix(f"{execution}-n0", str(index), str(retry))
    template = render_task_template(template, output_prefix)
    args = [list_inputs if a == f"{output_prefix}/inputs.pb" else a for a in template.container.args]
    template.container._args = args
    element = {name: values[index] for name, values in items.items()}
    inputs = TypeEngine.dict_to_literal_map(ctx, element, task.python_interface.inputs)
    metadata = execution_metadata(execution, f"n0-0-{index}", retry)
    array_envs = {"BATCH_JOB_ARRAY_INDEX_VAR_NAME": "FLYTE_K8S_ARRAY_INDEX", "FLYTE_K8S_ARRAY_INDEX": str(index)}
    metadata._environment_variables = {**(envs or {}), **array_envs}
    return template, output_prefix, inputs, metadata


def execution_metadata(execution: str, node: str, retry: int) -> TaskExecutionMetadata:
    tid = TaskExecutionIdentifier(
        task_id=Identifier(ResourceType.TASK, "flytesnacks", "development", "tests.task", "v1"),
        node_execution_id=NodeExecutionIdentifier(
            node, WorkflowExecutionIdentifier("flytesnacks", "development", execution)
        ),
        retry_attempt=retry,
    )
    return TaskExecutionMetadata(tid, "flytesnacks-development", {}, {}, "default", {}, None)


def outputs(output_prefix: str, task) -> Optional[Dict[str, Any]]:
    """The task's outputs as Python values, read from outputs.pb as propeller does."""
    local = os.path.join(tempfile.mkdtemp(prefix="propeller-"), "outputs.pb")
    _store().get_data(f"{output_prefix}/outputs.pb", local)
    proto = load_proto_from_file(literals_pb2.LiteralMap, local)
    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(proto), task.python_interface.outputs)


def delete(connector, meta, attempts: int = 6) -> None:
    """DeleteTask as propeller calls it when an execution is aborted (webapi/core.go `Abort`, only for an attempt
    whose create returned a meta): inside the deadline each time, again on a later round while it fails."""
    from flytekitplugins.skypilot import sky_api

    for attempt in range(attempts):
        started = time.monotonic()
        try:
            asyncio.new_event_loop().run_until_complete(connector.delete(meta))
            return
        except sky_api.SkyPilotUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(10)
        finally:
            assert time.monotonic() - started < CALL_DEADLINE_S, "DeleteTask must return inside propeller's 10 s"


# flytepropeller 1.16's defaults: the connector plugin's per-call timeout (connector/config.go defaultTimeout) and
# the webapi resource cache's MaxSystemFailures (pluginmachinery/webapi CachingConfig). Its resync interval is 30 s;
# tests shorten that one alone.
CALL_DEADLINE_S = 10.0
MAX_SYSTEM_FAILURES = 5
RESYNC_S = 30.0


@dataclass
class Shown:
    """What propeller keeps of a GetTask answer (connector/plugin.go `Status`): RUNNING and SUCCEEDED drop the
    message; ABORTED becomes a permanent failure with propeller's own text; FAILED a permanent failure
    "failed to run the job: <message>"; RETRYABLE_FAILED a retryable failure of kind USER, which spends the
    task's retries (core PhaseInfoRetryableFailure). Logs and custom_info are kept in every phase."""

    phase: str  # queued, waiting, initializing, running, succeeded, permanent_failure, retryable_failure
    message: Optional[str]
    logs: List[Any] = field(default_factory=list)
    custom_info: Any = None

    @property
    def terminal(self) -> bool:
        return self.phase in ("succeeded", "permanent_failure", "retryable_failure", "system_failure")


def shown(resource) -> Shown:
    from flyteidl.core.execution_pb2 import TaskExecution as P

    logs, info, message = list(resource.log_links or []), resource.custom_info, resource.message
    kept = {P.QUEUED: "queued", P.WAITING_FOR_RESOURCES: "waiting", P.INITIALIZING: "initializing"}
    if resource.phase in kept:
        return Shown(kept[resource.phase], message, logs, info)
    if resource.phase in (P.RUNNING, P.SUCCEEDED):
        return Shown("running" if resource.phase == P.RUNNING else "succeeded", None, logs, info)
    if resource.phase == P.ABORTED:
        return Shown("permanent_failure", "failed to run the job with aborted phase.", logs, info)
    if resource.phase == P.FAILED:
        return Shown("permanent_failure", f"failed to run the job: {message}", logs, info)
    if resource.phase == P.RETRYABLE_FAILED:
        return Shown("retryable_failure", f"failed to run the job: {message}", logs, info)
    raise AssertionError(f"propeller rejects phase {resource.phase}: unknown execution phase")


@dataclass
class Attempt:
    """One attempt of a node as propeller ran it."""

    retry: int
    output_prefix: str
    meta: Any = None  # None: the create failed or missed its deadline (no DeleteTask follows)
    resource: Any = None  # the last GetTask answer
    shown: Optional[Shown] = None
    failed_gets: int = 0
    create_seconds: float = 0.0
    get_seconds: List[float] = field(default_factory=list)
    create_error: Optional[str] = None


def _call(coro_fn, deadline: float):
    """A connector call under propeller's gRPC deadline. Past it propeller stops waiting, but the connector's
    handler runs on (a gRPC server does not stop a handler when its client's deadline passes)."""
    result = {}

    def target():
        try:
            result["value"] = asyncio.new_event_loop().run_until_complete(coro_fn())
        except Exception as e:  # what the gRPC server would return as an error status
            result["error"] = e

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise TimeoutError(f"DEADLINE_EXCEEDED after {deadline:.0f}s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def create_attempt(connector, template, prefix, inputs, metadata, deadline: float = CALL_DEADLINE_S) -> Attempt:
    """CreateTask once for the attempt (webapi/launcher.go `launch`): an error or a missed deadline ends the
    attempt as a retryable failure with no resource meta, so DeleteTask is never called for it."""
    attempt = Attempt(retry=metadata.task_execution_id.retry_attempt, output_prefix=prefix)
    started = time.monotonic()
    try:
        attempt.meta = _call(lambda: connector.create(template, prefix, inputs, metadata), deadline)
    except Exception as e:
        attempt.create_error = f"{type(e).__name__}: {e}"
        attempt.shown = Shown("retryable_failure", attempt.create_error)
    attempt.create_seconds = time.monotonic() - started
    figures.record("CreateTask", attempt.create_seconds, attempt.meta is None)
    if attempt.meta is not None:  # propeller stores the meta (etcd) and hands the decoded copy back
        attempt.meta = type(attempt.meta).decode(attempt.meta.encode())
    return attempt


def sync(connector, attempt: Attempt, deadline: float = CALL_DEADLINE_S) -> Shown:
    """One resync of the attempt (webapi/cache.go `SyncResource`): past MaxSystemFailures failed GetTasks (counted
    for the attempt's life, never reset) it is a system failure; else GetTask under the deadline, a failure or a
    timeout counted."""
    if attempt.failed_gets > MAX_SYSTEM_FAILURES:
        attempt.shown = Shown("system_failure", f"{attempt.failed_gets} GetTask calls failed")
        return attempt.shown
    started, failed = time.monotonic(), False
    try:
        attempt.resource = _call(lambda: connector.get(attempt.meta), deadline)
        attempt.shown = shown(attempt.resource)
    except Exception:
        attempt.failed_gets += 1
        failed = True
    attempt.get_seconds.append(time.monotonic() - started)
    figures.record("GetTask", attempt.get_seconds[-1], failed)
    return attempt.shown


def run_node(connector, prepare_attempt, retries: int, resync: float = RESYNC_S, timeout: float = 900) -> List[Attempt]:
    """A task node on a connector, attempt after attempt, as propeller runs it: `prepare_attempt(retry)` gives
    (template, output prefix, inputs, metadata); each attempt is created once, then synced every `resync` s
    until it is terminal; a retryable failure (a failed create included) is followed by the next attempt while
    `retries` allow."""
    attempts = []
    for retry in range(retries + 1):
        attempt = create_attempt(connector, *prepare_attempt(retry))
        deadline = time.monotonic() + timeout
        while attempt.meta is not None and not (attempt.shown and attempt.shown.terminal):
            assert time.monotonic() < deadline, f"attempt {retry} not finished after {timeout:.0f}s: {attempt.shown}"
            time.sleep(resync)
            sync(connector, attempt)
        attempts.append(attempt)
        if attempt.shown.phase != "retryable_failure":
            break
    return attempts


def execute(connector, task, inputs: Dict[str, Any], resync: float = 5.0, timeout: float = 900) -> List[Attempt]:
    """`task` as a node propeller runs (run_node), its retries from `@task(retries=N)`; resynced every `resync` s."""
    execution = f"e{uuid.uuid4().hex[:10]}"

    def attempt(retry):
        template, prefix, metadata = prepare(task, inputs, retry, execution)
        return template, prefix, None, metadata

    return run_node(connector, attempt, task.metadata.retries, resync=resync, timeout=timeout)


@dataclass
class ArrayRun:
    """An ArrayNode as propeller ran it: its outcome, each subnode's attempt, the most subnodes live at once."""

    phase: str  # succeeded or failed
    subnodes: Dict[int, Attempt]
    outputs: List[Optional[Dict[str, Any]]]
    most_live: int


def run_array_node(
    connector,
    mapped,
    items: Dict[str, List[Any]],
    execution: str,
    cluster=lambda: None,
    resync: float = 0.3,
    timeout: float = 120,
) -> ArrayRun:
    """A map_task's ArrayNode as flytepropeller 1.16 evaluates it (pkg/controller/nodes/array/handler.go
    `Handle`, ArrayNodePhaseExecuting): each round walks the subnodes in index order, skips the terminal ones and
    evaluates at most `concurrency` of the others (inferParallelism: unset or 0 is every subnode; a subnode's
    first evaluation creates it, prepare_map_subtask). minSuccesses is min_successes, else
    ceil(min_success_ratio * size), else all: when size - failed < minSuccesses the node fails and aborts the
    subnodes still running (ArrayNodePhaseFailing, `Abort`: DeleteTask); when successes >= minSuccesses and none
    is running it succeeds, a subnode that did not succeed giving nil outputs (ArrayNodePhaseSucceeding).
    `cluster()` runs between rounds (what the jobs do meanwhile). Subtasks here have no retries."""
    import math

    size = len(next(iter(items.values())))
    parallelism = mapped.concurrency or size
    min_successes = size
    if mapped.min_successes is not None:
        min_successes = mapped.min_successes
    elif mapped.min_success_ratio is not None:
        min_successes = math.ceil(mapped.min_success_ratio * size)
    subnodes: Dict[int, Attempt] = {}
    most_live, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        evaluated = 0
        for index in range(size):
            if evaluated >= parallelism:
                break
            attempt = subnodes.get(index)
            if attempt is not None and attempt.shown and attempt.shown.terminal:
                continue
            if attempt is None:
                template, prefix, inputs, metadata = prepare_map_subtask(mapped, items, index, execution)
                subnodes[index] = create_attempt(connector, template, prefix, inputs, metadata)
            else:
                sync(connector, attempt)
            evaluated += 1
        live = [a for a in subnodes.values() if not (a.shown and a.shown.terminal)]
        most_live = max(most_live, len(live))
        succeeded = sum(1 for a in subnodes.values() if a.shown and a.shown.phase == "succeeded")
        failed = sum(1 for a in subnodes.values() if a.shown and a.shown.terminal and a.shown.phase != "succeeded")
        if size - failed < min_successes:
            for attempt in live:
                if attempt.meta is not None:
                    delete(connector, attempt.meta)
            return ArrayRun("failed", subnodes, [], most_live)
        if succeeded >= min_successes and len(subnodes) == size and not live:
            task = mapped.python_function_task
            results = [
                outputs(subnodes[i].output_prefix, task) if subnodes[i].shown.phase == "succeeded" else None
                for i in range(size)
            ]
            return ArrayRun("succeeded", subnodes, results, most_live)
        cluster()
        time.sleep(resync)
    raise AssertionError(f"the ArrayNode did not finish in {timeout:.0f}s: {[a.shown for a in subnodes.values()]}")
