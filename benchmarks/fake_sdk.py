"""A stand-in for a SkyPilot API server at a scale this machine cannot host (1,000 in-flight managed jobs),
replaying the latencies measured on the bed's real one (benchmarks/coalesced_get.py, create_latency.py).

It cannot drift from the SDK: every call is bound against the real SDK function's signature first (a call
the real SDK would reject fails here too), and it answers with the real SDK's own types (ManagedJobRecord,
RequestPayload, ManagedJobStatus, RequestStatus). queue_v2 calls serialise, as they do on a real server.
"""

import inspect
import itertools
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Dict, List

import sky
from sky import exceptions, jobs
from sky.jobs.state import ManagedJobStatus
from sky.schemas.api import responses
from sky.server.requests import payloads
from sky.server.requests.requests import RequestStatus

# Seconds per call, from the bed (p50s): queue_v2 is the expensive one and serialises server-side.
LATENCY = {"launch": 0.16, "api_status": 0.05, "get": 0.05, "queue_v2": 0.4, "cancel": 0.1, "api_cancel": 0.1}
_REAL = {
    "launch": jobs.launch,
    "queue_v2": jobs.queue_v2,
    "api_status": sky.api_status,
    "get": sky.get,
    "cancel": jobs.cancel,
    "api_cancel": sky.api_cancel,
}


class FakeApiServer:
    def __init__(self, launch_seconds: float = 2.0, latency: Dict[str, float] = None) -> None:
        self.latency = {**LATENCY, **(latency or {})}
        self.launch_seconds = launch_seconds  # how long a launch request takes to create its job
        self.calls: Dict[str, int] = {name: 0 for name in _REAL}
        self._serial = threading.Lock()  # queue_v2 calls wait for each other
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: Dict[str, dict] = {}  # request id -> {"kind", "at", "job_id" | "job_ids"}
        self._jobs: Dict[int, dict] = {}

    def sdk(self) -> SimpleNamespace:
        """The SDK surface the connector's gateway (sky_api) uses, with the real exceptions."""
        fake_sky = SimpleNamespace(
            api_status=self._call("api_status"),
            get=self._call("get"),
            api_cancel=self._call("api_cancel"),
            __version__=sky.__version__,
            Task=sky.Task,
            Dag=sky.Dag,
        )  # offline parts: the real ones
        fake_jobs = SimpleNamespace(
            launch=self._call("launch"), queue_v2=self._call("queue_v2"), cancel=self._call("cancel")
        )
        return SimpleNamespace(sky=fake_sky, jobs=fake_jobs, exceptions=exceptions)

    def _call(self, name: str):
        signature = inspect.signature(_REAL[name])
        handler = getattr(self, f"_{name}")

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)  # TypeError where the real SDK would refuse the call
            with self._lock:
                self.calls[name] += 1
            if name == "queue_v2":
                with self._serial:
                    time.sleep(self.latency[name])
            else:
                time.sleep(self.latency[name])
            return handler(**bound.arguments)

        return call

    def _request(self, **body) -> str:
        request_id = str(uuid.uuid4())
        with self._lock:
            self._requests[request_id] = {"at": time.monotonic(), **body}
        return request_id

    def _launch(self, task, name=None, **_):
        return self._request(kind="launch", name=name)

    def _api_status(self, request_ids=None, **_):
        out = []
        for request_id in request_ids or []:
            request = self._requests.get(request_id)
            if request is None:
                continue
            done = request["kind"] != "launch" or time.monotonic() - request["at"] >= self.launch_seconds
            status = RequestStatus.SUCCEEDED if done else RequestStatus.RUNNING
            out.append(
                payloads.RequestPayload(
                    request_id=request_id,
                    name=f"jobs.{request['kind']}",
                    entrypoint="",
                    request_body="",
                    status=status.value,
                    created_at=request["at"],
                    user_id="bench",
                    return_value="",
                    error="",
                    pid=None,
                    schedule_type="short",
                )
            )
        return out

    def _get(self, request_id):
        request = self._requests[request_id]
        if request["kind"] == "launch":
            with self._lock:
                if "job_id" not in request:
                    request["job_id"] = next(self._ids)
                    self._jobs[request["job_id"]] = {"name": request["name"], "at": time.monotonic()}
            return [request["job_id"]], None
        if request["kind"] == "queue_v2":
            records = [self._record(j) for j in request["job_ids"] if j in self._jobs]
            return records, len(records), {}, len(self._jobs)
        return None

    def _record(self, job_id: int) -> responses.ManagedJobRecord:
        job = self._jobs[job_id]
        age = time.monotonic() - job["at"]
        status = (
            ManagedJobStatus.PENDING if age < 2 else ManagedJobStatus.STARTING if age < 5 else ManagedJobStatus.RUNNING
        )
        return responses.ManagedJobRecord(
            job_id=job_id,
            job_name=job["name"],
            status=status,
            recovery_count=0,
            infra="Fake (bench)",
            cloud="Fake",
            job_duration=age,
        )

    def _queue_v2(self, refresh, job_ids=None, **_):
        return self._request(kind="queue_v2", job_ids=list(job_ids or []))

    def _cancel(self, **_):
        return self._request(kind="cancel")

    def _api_cancel(self, **_):
        return self._request(kind="api_cancel")

    def job_ids(self) -> List[int]:
        return sorted(self._jobs)
