"""A stand-in for a SkyPilot API server at a scale this machine cannot host (1,000 in-flight managed jobs),
replaying the latencies measured on the bed's real one (benchmarks/coalesced_get.py, create_latency.py), and for
the connector's fast contract tests (outages, cancels, failed jobs, batched launches).

It cannot drift from the SDK: every call is bound against the real SDK function's signature first (a call
the real SDK would reject fails here too), and it answers with the real SDK's own types (ManagedJobRecord,
RequestPayload, ManagedJobStatus, RequestStatus) and raises its own exceptions. queue_v2 calls serialise, as
they do on a real server. Hand `sdk()` to the connector: `Runtime(sdk=server.sdk())`.

For long runs (benchmarks/soak.py): `finish_after` seconds jobs succeed on their own, and with `retain` the server
forgets finished jobs `retain` seconds after a status round reported them ended or a cancel named them (the
connector has seen them end), with their launch requests, and
its other requests `retain` seconds after they came (a real server keeps them in its own process's database), so
the process's memory is the connector's.
"""

import inspect
import itertools
import json
import threading
import time
import uuid
from collections import deque
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import sky
from sky import exceptions, jobs
from sky.jobs.state import ManagedJobStatus
from sky.schemas.api import responses
from sky.server.requests import payloads
from sky.server.requests.requests import RequestStatus

# Seconds per call, from the bed (p50s): queue_v2 is the expensive one and serialises server-side.
LATENCY = {
    "launch": 0.16,
    "api_status": 0.05,
    "get": 0.05,
    "queue_v2": 0.4,
    "cancel": 0.1,
    "api_cancel": 0.1,
    "tail_logs": 0.1,
}
NO_LATENCY = {name: 0.0 for name in LATENCY}
_REAL = {
    "launch": jobs.launch,
    "queue_v2": jobs.queue_v2,
    "api_status": sky.api_status,
    "get": sky.get,
    "cancel": jobs.cancel,
    "api_cancel": sky.api_cancel,
    "tail_logs": jobs.tail_logs,
}
URL = "http://fake-api-server"


class FakeApiServer:
    def __init__(
        self,
        launch_seconds: float = 2.0,
        latency: Dict[str, float] = None,
        finish_after: Optional[float] = None,
        retain: Optional[float] = None,
    ) -> None:
        self.latency = {**LATENCY, **(latency or {})}
        self.launch_seconds = launch_seconds  # how long a launch request takes to create its jobs
        self.finish_after = finish_after  # a job's age at which it SUCCEEDS on its own (None: it runs on)
        self.retain = retain  # seconds finished jobs and requests are kept (None: for ever)
        self.calls: Dict[str, int] = {name: 0 for name in _REAL}
        self.unreachable = False  # an outage: every call raises ApiServerConnectionError, as the SDK does
        self.hang_until = 0.0  # a frozen server (monotonic time): calls wait until then, then are answered
        self.launches: List[Tuple[str, int]] = []  # (job name, num_jobs) of every launch request
        self.cancelled: List[int] = []  # job ids cancelled, in order
        self.logs: Dict[int, str] = {}  # job id -> what the job printed (tail_logs)
        self._serial = threading.Lock()  # queue_v2 calls wait for each other
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: Dict[str, dict] = {}  # request id -> {"kind", "at", ...; a launch's "job_ids"}
        self._jobs: Dict[int, dict] = {}
        self._named: Dict[str, List[int]] = {}  # job name -> its job ids
        self._due: deque = deque()  # launch request ids that have not created their jobs yet, oldest first
        self._purged_at = 0.0

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
            launch=self._call("launch"),
            queue_v2=self._call("queue_v2"),
            cancel=self._call("cancel"),
            tail_logs=self._call("tail_logs"),
        )
        return SimpleNamespace(sky=fake_sky, jobs=fake_jobs, exceptions=exceptions)

    # ---- what a test does to the server ----

    def set_status(self, job_id: int, status: ManagedJobStatus, failure_reason: Optional[str] = None) -> None:
        """Moves a job on (otherwise it goes PENDING, STARTING, RUNNING with age and stays there)."""
        with self._lock:
            self._jobs[job_id].update(status=status, failure_reason=failure_reason, ended=time.monotonic())

    def hang(self, seconds: float) -> None:
        """Freezes the server for `seconds` from now (as SIGSTOP would): every call until then waits for it."""
        self.hang_until = time.monotonic() + seconds

    def live_jobs(self) -> List[int]:
        """The jobs not in a final state."""
        with self._lock:
            self._advance()
            return sorted(j for j in self._jobs if not self._record(j).status.is_terminal())

    def job_ids(self) -> List[int]:
        with self._lock:
            self._advance()
            return sorted(self._jobs)

    def jobs_named(self, name: str) -> List[int]:
        with self._lock:
            self._advance()
            return sorted(j for j, job in self._jobs.items() if job["name"] == name)

    def status(self, job_id: int) -> ManagedJobStatus:
        with self._lock:
            return self._record(job_id).status

    # ---- the calls ----

    def _call(self, name: str):
        signature = inspect.signature(_REAL[name])
        handler = getattr(self, f"_{name}")

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)  # TypeError where the real SDK would refuse the call
            with self._lock:
                self.calls[name] += 1
            if self.unreachable:
                raise exceptions.ApiServerConnectionError(URL)
            frozen = self.hang_until - time.monotonic()
            if frozen > 0:  # connections accepted, nothing answered: the call returns once the server thaws
                time.sleep(frozen)
            if name == "queue_v2":
                with self._serial:
                    time.sleep(self.latency[name])
            else:
                time.sleep(self.latency[name])
            with self._lock:
                self._advance()
            return handler(**bound.arguments)

        return call

    def _advance(self) -> None:
        """Launch requests whose time has come create their jobs (caller holds the lock)."""
        now = time.monotonic()
        while self._due and now - self._requests[self._due[0]]["at"] >= self.launch_seconds:
            request = self._requests[self._due.popleft()]
            if not request.get("cancelled"):
                request["job_ids"] = [next(self._ids) for _ in range(request["num_jobs"])]
                for job_id in request["job_ids"]:
                    self._jobs[job_id] = {"name": request["name"], "at": request["at"] + self.launch_seconds}
                    self._named.setdefault(request["name"], []).append(job_id)
        if self.retain is not None and now - self._purged_at >= min(1.0, self.retain):
            self._purge(now)

    def _purge(self, now: float) -> None:
        """Forgets what ended more than `retain` seconds ago (caller holds the lock)."""
        self._purged_at, before = now, now - self.retain
        gone = {
            j
            for j, job in self._jobs.items()
            if self._ended(j) and min(job.get("deleted", now), job.get("reported_ended", now)) < before
        }
        for job_id in gone:
            job = self._jobs.pop(job_id)
            named = self._named.get(job["name"], [])
            named.remove(job_id)
            if not named:
                self._named.pop(job["name"], None)
        for request_id, request in list(self._requests.items()):
            if request["at"] < before and (request["kind"] != "launch" or self._launch_over(request, gone)):
                del self._requests[request_id]
        del self.launches[:-1000], self.cancelled[:-1000]  # recent history only

    def _ended(self, job_id: int) -> Optional[float]:
        job = self._jobs[job_id]
        if job.get("ended") is not None:
            return job["ended"]
        if job.get("status") is None and self.finish_after is not None:
            return job["at"] + self.finish_after if time.monotonic() - job["at"] >= self.finish_after else None
        return None

    def _launch_over(self, request: dict, gone: set) -> bool:
        if "job_ids" not in request:
            return bool(request.get("cancelled"))
        return all(j in gone or j not in self._jobs for j in request["job_ids"])

    def _request(self, **body) -> str:
        request_id = str(uuid.uuid4())
        with self._lock:
            self._requests[request_id] = {"at": time.monotonic(), **body}
            if body["kind"] == "launch":
                self._due.append(request_id)
        return request_id

    def _state(self, request: dict) -> RequestStatus:
        if request.get("cancelled"):
            return RequestStatus.CANCELLED
        if request["kind"] == "launch" and "job_ids" not in request:
            return RequestStatus.RUNNING
        return RequestStatus.SUCCEEDED

    def _launch(self, task, name=None, num_jobs=None, **_):
        with self._lock:
            self.launches.append((name, num_jobs or 1))
        return self._request(kind="launch", name=name, num_jobs=num_jobs or 1, task=task)

    def _api_status(self, request_ids=None, all_status=False, **_):
        with self._lock:
            chosen = list(self._requests) if request_ids is None else [r for r in request_ids if r in self._requests]
            out = []
            for request_id in chosen:
                request, state = self._requests[request_id], self._state(self._requests[request_id])
                if request_ids is None and not all_status and state != RequestStatus.RUNNING:
                    continue  # like the real server: without all_status, only the requests in flight
                out.append(_payload(request_id, request, state))
            return out

    def _get(self, request_id):
        request = self._requests[request_id]
        if request["kind"] == "launch":
            while True:  # the real get blocks until the request finished
                with self._lock:
                    self._advance()
                    state = self._state(request)
                if state != RequestStatus.RUNNING:
                    break
                time.sleep(0.01)
            if state == RequestStatus.CANCELLED:
                raise exceptions.RequestCancelled(f"Request {request_id} is cancelled")
            return list(request["job_ids"]), None
        if request["kind"] == "queue_v2":
            with self._lock:
                records = [self._record(j) for j in self._queued(request)]
                now = time.monotonic()
                for record in records:  # a status round that reported the job ended: the connector has seen it
                    if record.status.is_terminal():
                        self._jobs[record.job_id].setdefault("reported_ended", now)
            return records, len(records), {}, len(self._jobs)
        return None

    def _queued(self, request: dict) -> List[int]:
        if request["job_ids"]:
            return [j for j in request["job_ids"] if j in self._jobs]
        return sorted(j for j, job in self._jobs.items() if request["name_match"] in job["name"])

    def _record(self, job_id: int) -> responses.ManagedJobRecord:
        job = self._jobs[job_id]
        age = time.monotonic() - job["at"]
        status = job.get("status") or (
            ManagedJobStatus.SUCCEEDED
            if self.finish_after is not None and age >= self.finish_after
            else ManagedJobStatus.PENDING
            if age < 2
            else ManagedJobStatus.STARTING
            if age < 5
            else ManagedJobStatus.RUNNING
        )
        return responses.ManagedJobRecord(
            job_id=job_id,
            job_name=job["name"],
            status=status,
            failure_reason=job.get("failure_reason"),
            recovery_count=0,
            infra="Fake (bench)",
            cloud="Fake",
            job_duration=age,
        )

    def _queue_v2(self, refresh, job_ids=None, name_match=None, **_):
        return self._request(kind="queue_v2", job_ids=list(job_ids or []), name_match=name_match or "")

    def _cancel(self, name=None, job_ids=None, **_):
        with self._lock:
            chosen = sorted({*(job_ids or []), *self._named.get(name, [])} & set(self._jobs))
            for job_id in chosen:
                self._jobs[job_id]["deleted"] = time.monotonic()
                if not self._record(job_id).status.is_terminal():
                    self._jobs[job_id].update(status=ManagedJobStatus.CANCELLED, ended=time.monotonic())
                    self.cancelled.append(job_id)
        return self._request(kind="cancel")

    def _api_cancel(self, request_ids=None, **_):
        with self._lock:
            for request_id in [request_ids] if isinstance(request_ids, str) else request_ids or []:
                request = self._requests.get(request_id)
                if request is not None and self._state(request) == RequestStatus.RUNNING:
                    request["cancelled"] = True
        return self._request(kind="api_cancel")

    def _tail_logs(self, job_id=None, output_stream=None, **_):
        output_stream.write(self.logs.get(job_id, ""))
        return 0


def _payload(request_id: str, request: dict, state: RequestStatus) -> payloads.RequestPayload:
    return payloads.RequestPayload(
        request_id=request_id,
        name=f"sky.jobs.{request['kind']}",
        entrypoint="",
        request_body=json.dumps({"name": request.get("name")}),
        status=state.value,
        created_at=request["at"],
        user_id="bench",
        return_value="",
        error="",
        pid=None,
        schedule_type="short",
    )
