"""A rolling restart of two connector replicas while tasks run, as Kubernetes does it with the shipped
Deployment (maxSurge 1, maxUnavailable 0): propeller's GetTasks, round-robin over the ready replicas, never fail."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from conftest import statuses
from flyteidl.admin.agent_pb2 import CreateTaskRequest, GetTaskRequest, TaskCategory
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service.agent_pb2_grpc import AsyncAgentServiceStub
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tasks import repeat
from test_grpc import _free_port

from flytekitplugins.skypilot import SkyPilotMetadata
from tests.support import figures, outputs, prepare

ROOT = Path(__file__).resolve().parents[2]
CATEGORY = TaskCategory(name="skypilot", version=1)
TERMINAL = {TaskExecution.SUCCEEDED, TaskExecution.FAILED, TaskExecution.RETRYABLE_FAILED, TaskExecution.ABORTED}
ENDPOINTS_LAG_S = 1.5  # a terminating pod leaves the Service's endpoints this long after its SIGTERM


class Replica:
    """One connector pod: `python -m agent_service` on its own port."""

    def __init__(self, log_dir: Path, name: str):
        self.port, metrics = _free_port(), _free_port()
        env = {**os.environ, "CONNECTOR_PORT": str(self.port), "CONNECTOR_PROMETHEUS_PORT": str(metrics)}
        env.update(CONNECTOR_WORKERS="4", CONNECTOR_DRAIN_SECONDS="4", CONNECTOR_SHUTDOWN_GRACE_SECONDS="5")
        self.log = open(log_dir / f"{name}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_service"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def ready(self) -> bool:
        """The readiness probe: the gRPC health service says SERVING."""
        try:
            check = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return check.status == health_pb2.HealthCheckResponse.SERVING

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert self.process.poll() is None and time.monotonic() < deadline, "replica did not become ready"
            time.sleep(0.5)


class Service:
    """The connector's Service as propeller reaches it: each call to the next ready endpoint in turn."""

    def __init__(self, replicas):
        self.endpoints, self.lock, self.turn = list(replicas), threading.Lock(), 0
        self.failures, self.calls = [], 0

    def call(self, method: str, request):
        with self.lock:
            replica = self.endpoints[self.turn % len(self.endpoints)]
            self.turn += 1
            self.calls += 1
        started = time.monotonic()
        try:
            answer = getattr(AsyncAgentServiceStub(replica.channel), method)(request, timeout=10)
        except grpc.RpcError as e:
            self.failures.append(f"{method} on :{replica.port}: {e.code().name} {e.details()}")
            figures.record(method, time.monotonic() - started, True)
            raise
        figures.record(method, time.monotonic() - started, False)
        return answer

    def roll(self, old: Replica, log_dir: Path, name: str) -> Replica:
        """maxSurge 1, maxUnavailable 0: the new pod becomes ready and joins; then the old one gets SIGTERM and
        leaves the endpoints a moment later; it must end within its grace period."""
        new = Replica(log_dir, name)
        new.wait_ready()
        with self.lock:
            self.endpoints.append(new)
        old.process.send_signal(signal.SIGTERM)
        time.sleep(ENDPOINTS_LAG_S)
        with self.lock:
            self.endpoints.remove(old)
        assert old.process.wait(timeout=40) == 0  # terminationGracePeriodSeconds
        return new


def test_a_rolling_restart_of_both_replicas_fails_no_get_task(tmp_path):
    replicas = [Replica(tmp_path, "a"), Replica(tmp_path, "b")]
    for replica in replicas:
        replica.wait_ready()
    service = Service(replicas)
    tasks = []
    for word in ("roll", "over"):
        template, prefix, metadata = prepare(repeat, {"word": word, "times": 2})
        request = CreateTaskRequest(
            template=template.to_flyte_idl(), output_prefix=prefix, task_execution_metadata=metadata.to_flyte_idl()
        )
        tasks.append((word, prefix, service.call("CreateTask", request).resource_meta))
    rolled = []
    roller = threading.Thread(
        target=lambda: rolled.extend(service.roll(r, tmp_path, f"{r.port}-new") for r in list(replicas)), daemon=True
    )
    roller.start()
    with figures.during("two replicas restarted in turn"):
        final, deadline = {}, time.monotonic() + 900
        while (len(final) < len(tasks) or roller.is_alive()) and time.monotonic() < deadline:
            for word, _, meta in tasks:
                resource = service.call("GetTask", GetTaskRequest(task_category=CATEGORY, resource_meta=meta)).resource
                if resource.phase in TERMINAL:
                    final[word] = resource
            time.sleep(2)
    try:
        assert not service.failures, service.failures
        assert len(rolled) == 2 and all(r.ready() for r in rolled), "both replicas replaced"
        assert service.calls > 20, service.calls  # GetTasks throughout both restarts
        for word, prefix, meta in tasks:
            assert final[word].phase == TaskExecution.SUCCEEDED, final[word].message
            assert outputs(prefix, repeat)["o0"].startswith(f"{word}-{word}@")
            assert statuses(SkyPilotMetadata.decode(meta).job_name) == ["SUCCEEDED"]  # one job, never relaunched
    finally:
        for replica in [*replicas, *rolled]:
            if replica.process.poll() is None:
                replica.process.kill()
