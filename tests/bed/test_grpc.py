"""The connector behind a real `pyflyte serve connector`, driven over gRPC as propeller drives it."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
import pytest
from conftest import statuses
from flyteidl.admin.agent_pb2 import CreateTaskRequest, DeleteTaskRequest, GetTaskRequest, ListAgentsRequest, TaskCategory
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service.agent_pb2_grpc import AgentMetadataServiceStub, AsyncAgentServiceStub
from propeller import outputs, prepare

from flytekitplugins.skypilot import SkyPilotMetadata
from tasks import repeat

CATEGORY = TaskCategory(name="skypilot", version=0)
TERMINAL = {TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("connector") / "serve.log"
    pyflyte = str(Path(sys.executable).parent / "pyflyte")
    cmd = [pyflyte, "serve", "connector", "--port", str(port), "--prometheus_port", str(_free_port()), "--worker", "4"]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(ch).result(timeout=60)
        yield ch
    finally:
        ch.close()
        server.terminate()
        server.wait(timeout=30)


def test_connector_service_lists_the_skypilot_task_type(channel):
    agents = AgentMetadataServiceStub(channel).ListAgents(ListAgentsRequest(), timeout=10).agents
    assert any(c.name == "skypilot" for a in agents for c in a.supported_task_categories)


def test_create_get_outputs_over_grpc(channel):
    stub = AsyncAgentServiceStub(channel)
    template, prefix, metadata = prepare(repeat, {"word": "grpc", "times": 2})
    request = CreateTaskRequest(template=template.to_flyte_idl(), output_prefix=prefix,
                                task_execution_metadata=metadata.to_flyte_idl())
    for attempt in range(3):  # as propeller does: a CreateTask that misses its 10 s is sent again
        try:
            created = stub.CreateTask(request, timeout=10)
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED or attempt == 2:
                raise
    meta = SkyPilotMetadata.decode(created.resource_meta)
    assert meta.output_prefix == prefix and meta.job_name.startswith("flyte-")

    deadline = time.monotonic() + 600
    while True:
        resource = stub.GetTask(GetTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta),
                                timeout=10).resource
        if resource.phase in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert any("/dashboard/jobs/" in link.uri for link in resource.log_links)
    # where it ran and for how long, from SkyPilot's records; the bed's Slurm has no prices: cost unknown
    info = MessageToDict(resource.custom_info)
    assert info["cloud"] == "Slurm" and info["infra"] == "Slurm (localcluster)" and info["job_duration_s"] > 0, info
    assert info.get("estimated_cost_usd") is None and "cost unknown" in resource.message
    result = outputs(prefix, repeat)["o0"]
    assert result.startswith("grpc-grpc@")
    assert meta.job_name in result  # computed inside that very managed job
    assert statuses(meta.job_name) == ["SUCCEEDED"]  # one job, however many creates
    stub.DeleteTask(DeleteTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta), timeout=10)
