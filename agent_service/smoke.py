"""The preflight's tiny job: a SkyPilot YAML task (`echo`) sent to the connector over gRPC, as propeller would."""

import time
import uuid

import grpc
from flyteidl.admin.agent_pb2 import CreateTaskRequest, GetTaskRequest, TaskCategory
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service.agent_pb2_grpc import AsyncAgentServiceStub
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.models.core.identifier import (
    Identifier,
    NodeExecutionIdentifier,
    ResourceType,
    TaskExecutionIdentifier,
    WorkflowExecutionIdentifier,
)
from flytekit.models.task import TaskExecutionMetadata
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilotYamlTask

CATEGORY = TaskCategory(name="skypilot", version=1)  # what propeller sends: the template's
_TERMINAL = {TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED}
MARK = "flyte-skypilot preflight ok"


def run_smoke_job(address: str, infra: str = "", timeout_s: float = 900.0) -> str:
    resources = {"cpus": "1+", **({"infra": infra} if infra else {})}
    task = SkyPilotYamlTask("preflight", {"resources": resources, "run": f"echo {MARK}"})
    template = get_serializable({}, SerializationSettings(image_config=ImageConfig.auto_default_image()), task).template
    run_id = f"preflight-{uuid.uuid4().hex[:8]}"
    tid = TaskExecutionIdentifier(
        task_id=Identifier(ResourceType.TASK, "preflight", "development", "preflight", "v1"),
        node_execution_id=NodeExecutionIdentifier(
            "n0", WorkflowExecutionIdentifier("preflight", "development", run_id)
        ),
        retry_attempt=0,
    )
    meta = TaskExecutionMetadata(tid, "preflight-development", {}, {}, "default", {}, None)
    stub = AsyncAgentServiceStub(grpc.insecure_channel(address))
    created = _as_propeller(
        stub.CreateTask,
        CreateTaskRequest(
            template=template.to_flyte_idl(),
            output_prefix=f"s3://unused/{run_id}",  # the echo job writes nothing
            task_execution_metadata=meta.to_flyte_idl(),
        ),
    )
    deadline, started = time.monotonic() + timeout_s, time.monotonic()
    while time.monotonic() < deadline:
        resource = _as_propeller(
            stub.GetTask, GetTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta)
        ).resource
        if resource.phase in _TERMINAL:
            if resource.phase != TaskExecution.SUCCEEDED:
                raise RuntimeError(f"the job ended {TaskExecution.Phase.Name(resource.phase)}: {resource.message}")
            links = ", ".join(link.uri for link in resource.log_links)
            return f"SUCCEEDED in {time.monotonic() - started:.0f} s ({links})"
        time.sleep(5)
    raise RuntimeError(f"the job did not finish within {timeout_s:.0f} s; last: {resource.message}")


def _as_propeller(call, request, attempts: int = 4):
    """A call with propeller's 10 s deadline, sent again when it runs out (CreateTask is idempotent per attempt)."""
    for attempt in range(attempts):
        try:
            return call(request, timeout=10)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED or attempt == attempts - 1:
                raise
            time.sleep(5)
