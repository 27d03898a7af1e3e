"""The connector behind a real `pyflyte serve connector`, driven over gRPC as propeller drives it."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import grpc
import pytest
from conftest import statuses
from flyteidl.admin.agent_pb2 import (
    CreateTaskRequest,
    DeleteTaskRequest,
    GetTaskRequest,
    ListAgentsRequest,
    TaskCategory,
)
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service.agent_pb2_grpc import AgentMetadataServiceStub, AsyncAgentServiceStub
from google.protobuf.json_format import MessageToDict
from tasks import repeat

from flytekitplugins.skypilot import SkyPilotMetadata
from tests.support import figures, outputs, prepare

CATEGORY = TaskCategory(name="skypilot", version=1)  # what propeller sends: the template's
TERMINAL = {TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connector(tmp_path_factory):
    """A `pyflyte serve connector` process: (gRPC channel, Prometheus metrics URL)."""
    port, metrics_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("connector") / "serve.log"
    pyflyte = str(Path(sys.executable).parent / "pyflyte")
    cmd = [pyflyte, "serve", "connector", "--port", str(port), "--prometheus_port", str(metrics_port), "--worker", "4"]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(ch).result(timeout=60)
        yield ch, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        ch.close()
        server.terminate()
        server.wait(timeout=30)


def test_connector_service_lists_the_skypilot_task_type(connector):
    agents = AgentMetadataServiceStub(connector[0]).ListAgents(ListAgentsRequest(), timeout=10).agents
    categories = {(c.name, c.version) for a in agents for c in a.supported_task_categories}
    assert {("skypilot", 0), ("skypilot", 1)} <= categories, categories  # 1: the subtasks of a map_task


def queue_calls(metrics_url: str) -> float:
    """The connector's queue_v2 calls so far, from its Prometheus metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('skypilot_connector_sdk_calls_total{call="queue"')
    )


GET_EVERY_S = 2


def drive(stub, word: str, gets: List[float]):
    """One task as propeller drives it: CreateTask (sent again if it misses its 10 s), then GetTasks, here every
    2 s (more often than propeller's resync, as many tasks' GetTasks would be), to show they share one poll."""
    template, prefix, metadata = prepare(repeat, {"word": word, "times": 2})
    request = CreateTaskRequest(
        template=template.to_flyte_idl(), output_prefix=prefix, task_execution_metadata=metadata.to_flyte_idl()
    )
    for attempt in range(3):
        started = time.monotonic()
        try:
            created = stub.CreateTask(request, timeout=10)
            figures.record("CreateTask", time.monotonic() - started, False)
            break
        except grpc.RpcError as e:
            figures.record("CreateTask", time.monotonic() - started, True)
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED or attempt == 2:
                raise
    deadline = time.monotonic() + 900
    while True:
        started = time.monotonic()
        resource = stub.GetTask(
            GetTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta), timeout=10
        ).resource  # DEADLINE_EXCEEDED here fails the test
        gets.append(time.monotonic() - started)
        figures.record("GetTask", gets[-1], False)
        if resource.phase in TERMINAL or time.monotonic() > deadline:
            return created, prefix, resource
        time.sleep(GET_EVERY_S)


@pytest.mark.xdist_group("heavy")  # several jobs at once: not beside the other multi-job tests on the 2-core bed
def test_concurrent_tasks_over_grpc_share_one_skypilot_poll(connector):
    channel, metrics_url = connector
    stub, gets, words = AsyncAgentServiceStub(channel), [], ["alpha", "bravo"]
    calls_before, started = queue_calls(metrics_url), time.monotonic()
    with ThreadPoolExecutor(len(words)) as pool:
        results = list(pool.map(lambda w: drive(stub, w, gets), words))
    seconds, calls = time.monotonic() - started, queue_calls(metrics_url) - calls_before
    # one queue_v2 per polling round (5 s) for all tasks, however many GetTasks (each task's every 2 s: about
    # five times the rounds, so a call per GetTask could not pass)
    assert calls <= seconds / 5 + 3, (calls, seconds, len(gets))
    assert len(gets) > 2 * calls, (calls, len(gets))
    for word, (created, prefix, resource) in zip(words, results, strict=True):
        meta = SkyPilotMetadata.decode(created.resource_meta)
        assert resource.phase == TaskExecution.SUCCEEDED, resource.message
        assert any("/dashboard/jobs/" in link.uri for link in resource.log_links)
        # where it ran and for how long, from SkyPilot's records; the bed's Slurm has no prices: cost unknown
        info = MessageToDict(resource.custom_info)
        assert info["cloud"] == "Slurm" and info["infra"] == "Slurm (localcluster)" and info["job_duration_s"] > 0
        assert info.get("estimated_cost_usd") is None and "cost unknown" in resource.message
        result = outputs(prefix, repeat)["o0"]
        assert result.startswith(f"{word}-{word}@") and meta.job_name in result  # computed in that very job
        assert statuses(meta.job_name) == ["SUCCEEDED"]  # one job, however many creates
        stub.DeleteTask(DeleteTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta), timeout=10)
