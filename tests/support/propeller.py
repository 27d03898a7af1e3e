"""What propeller does around a connector call: render the template, write inputs.pb, name the attempt, and
drive create / get / delete as propeller does."""

import os
import uuid
from typing import Any, Dict, List, Optional, Tuple

from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
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

from flytekitplugins.skypilot import shared_fs


def prepare(
    task, inputs: Dict[str, Any], retry: int = 0, execution: Optional[str] = None, node: str = "n0"
) -> Tuple[TaskTemplate, str, TaskExecutionMetadata]:
    """A rendered template, an output prefix holding inputs.pb, and the metadata of one task attempt."""
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable({}, settings, task).template
    if task.task_config.on_host:  # a shared-filesystem deployment gives the job this environment
        template.container._env = {**(template.container.env or {}), **shared_fs.host_env(task._source_root())}
    output_prefix = os.path.join(shared_fs.run_data_dir(), uuid.uuid4().hex[:8])
    os.makedirs(output_prefix)
    ctx = FlyteContextManager.current_context()
    literals = TypeEngine.dict_to_literal_map(ctx, inputs, task.get_input_types())
    write_proto_to_file(literals.to_flyte_idl(), os.path.join(output_prefix, "inputs.pb"))
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
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable({}, settings, mapped).template
    task = mapped.python_function_task
    if task.task_config.on_host:
        template.container._env = {**(template.container.env or {}), **shared_fs.host_env(task._source_root())}
    node_dir = os.path.join(shared_fs.run_data_dir(), f"{execution}-n0")
    list_inputs = os.path.join(node_dir, "inputs.pb")
    ctx = FlyteContextManager.current_context()
    if not os.path.exists(list_inputs):
        os.makedirs(node_dir, exist_ok=True)
        literals = TypeEngine.dict_to_literal_map(ctx, items, mapped.python_interface.inputs)
        write_proto_to_file(literals.to_flyte_idl(), list_inputs)
    output_prefix = os.path.join(node_dir, str(index), str(retry))
    os.makedirs(output_prefix)
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
    proto = load_proto_from_file(literals_pb2.LiteralMap, os.path.join(output_prefix, "outputs.pb"))
    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(proto), task.python_interface.outputs)


def delete(connector, meta, attempts: int = 6) -> None:
    """DeleteTask as propeller calls it: inside 10 s each time, again later while it fails (SkyPilot busy)."""
    import asyncio
    import time

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
            assert time.monotonic() - started < 10, "DeleteTask must return inside propeller's 10 s"


def execute(connector, task, inputs: Dict[str, Any], timeout: float = 900) -> List[Tuple[Any, Any]]:
    """A node's attempts as propeller runs them: create, poll get until a final phase, and a new attempt (a new
    output prefix, the next retry attempt) after RETRYABLE_FAILED while `@task(retries=N)` has retries left.
    Returns (resource meta, final resource) per attempt."""
    import asyncio
    import time

    from flyteidl.core.execution_pb2 import TaskExecution

    final = (TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED)
    execution, attempts = f"e{uuid.uuid4().hex[:10]}", []
    for retry in range(task.metadata.retries + 1):
        template, prefix, metadata = prepare(task, inputs, retry, execution)
        meta = asyncio.new_event_loop().run_until_complete(connector.create(template, prefix, None, metadata))
        deadline = time.monotonic() + timeout
        while (resource := asyncio.new_event_loop().run_until_complete(connector.get(meta))).phase not in final:
            assert time.monotonic() < deadline, f"attempt {retry} not finished after {timeout:.0f}s: {resource.message}"
            time.sleep(5)
        attempts.append((meta, resource))
        if resource.phase != TaskExecution.RETRYABLE_FAILED:
            break
    return attempts
