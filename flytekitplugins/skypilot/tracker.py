"""The process's shared view of SkyPilot: one poll per cycle for every tracked launch and job.

Propeller asks GetTask for each task every ~30 s with a 10 s budget, and one `queue_v2` costs seconds on a
busy API server (concurrent calls serialise). So no get() calls SkyPilot for itself: a background poller runs
rounds of at most one `api_status` (all launch requests still in flight) and one `queue_v2(job_ids=<all
tracked jobs>)`, every `max_age` seconds while anything is tracked, and get() reads the latest round. A get()
for something not yet seen waits for the next round, never longer than `wait` seconds.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from flytekit import logger

from . import sky_api, status
from .background import Worker

_FORGET_AFTER_S = 900.0  # jobs nobody asked about for this long are dropped (their Flyte task is gone)
_NEW = "NEW"  # signed up, not polled yet
_SETTLE_THREADS = 8  # finished launch requests resolved side by side (a burst of creates settles together)
IN_FLIGHT = (_NEW, "PENDING", "RUNNING")


@dataclass
class Launch:
    """What became of a launch request: a job id, or the request's state and SkyPilot's error."""

    state: str
    job_id: Optional[int] = None
    error: Optional[str] = None
    retryable: bool = False
    job_ids: Tuple[int, ...] = ()  # every job of a batched launch, by SKYPILOT_JOB_RANK (job_id is rank 0's)


class Tracker:
    def __init__(self, sky: sky_api.Client, max_age: float, wait: float = 6.0) -> None:
        self._sky = sky
        self.max_age = max_age  # seconds between rounds (the connector's poll interval)
        self.wait = wait
        self.calls = 0  # SkyPilot calls made, for benchmarks and tests
        self.unavailable: Optional[str] = None  # why the last round failed, if it did
        self.unavailable_since: Optional[float] = None  # monotonic time of the first failed round in a row
        self._cond = threading.Condition()
        self._round = 0
        self._wake = False
        self._poller = Worker("skypilot-tracker", self._poll)
        self._busy = False  # a round is in progress
        self._in_round: frozenset = frozenset()  # the request and job ids that round asks about
        self._requests: Dict[str, str] = {}  # launch request id -> state, while in flight
        self._launches: Dict[str, Launch] = {}  # launch request id -> final outcome
        self._launch_asked: Dict[str, float] = {}  # settled launch request id -> when a get() last asked
        self._asked: Dict[int, float] = {}  # tracked job id -> when a get() last asked
        self._records: Dict[int, dict] = {}  # job id -> latest queue record

    def watch(self, request_id: str) -> None:
        """Signs a launch request up for the next round."""
        with self._cond:
            if request_id not in self._launches and request_id not in self._requests:
                self._requests[request_id] = _NEW
                self._nudge()

    def launch(self, request_id: str, fresh: bool = False) -> Launch:
        """The outcome of a launch request so far; `fresh` waits for a round that starts after this call."""
        self.watch(request_id)
        with self._cond:
            if fresh and request_id not in self._launches:
                self._next_round()
            if self._requests.get(request_id) == _NEW:
                self._next_round(request_id)
            if request_id in self._launches:
                self._launch_asked[request_id] = time.monotonic()
                return self._launches[request_id]
            return Launch(self._requests.get(request_id, _NEW))

    def job(self, job_id: int) -> Optional[dict]:
        """The latest queue record of a managed job (None until a round has seen it)."""
        with self._cond:
            self._asked[job_id] = time.monotonic()
            if job_id not in self._records:
                self._next_round(job_id)
            elif not status.job_finished(self._records[job_id]) and not self._poller.running:
                self._nudge()  # the poller stopped while nothing was asked for: keep this job's record fresh
            return self._records.get(job_id)

    def cached_launch(self, request_id: str) -> Optional[Launch]:
        """The outcome of a settled launch request, without waiting (None if not settled yet)."""
        with self._cond:
            launch = self._launches.get(request_id)
            if launch is not None:
                self._launch_asked[request_id] = time.monotonic()
            return launch

    def cached_job(self, job_id: int) -> Optional[dict]:
        """The latest record of a job a round has seen, without waiting (None if none has)."""
        with self._cond:
            record = self._records.get(job_id)
            if record is not None:
                self._asked[job_id] = time.monotonic()
                if not status.job_finished(record) and not self._poller.running:
                    self._nudge()
            return record

    def forget(self, request_id: Optional[str], job_id: Optional[int]) -> None:
        with self._cond:
            self._requests.pop(request_id, None)
            self._launches.pop(request_id, None)
            self._launch_asked.pop(request_id, None)
            if job_id is not None:
                self._asked.pop(job_id, None)
                self._records.pop(job_id, None)

    def _nudge(self) -> None:
        """Asks for a round now (caller holds the condition)."""
        self._wake = True
        self._poller.start()
        self._cond.notify_all()

    def _next_round(self, key: object = None) -> None:
        """Waits (caller holds the condition) for the first round that covers `key` (or starts from now)."""
        covered = self._busy and key is not None and key in self._in_round
        target = self._round + (2 if self._busy and not covered else 1)
        self._nudge()
        deadline = time.monotonic() + self.wait
        while self._round < target and time.monotonic() < deadline:
            self._cond.wait(deadline - time.monotonic())

    def _poll(self) -> None:
        while True:
            with self._cond:
                while not self._wake:
                    if not self._requests and not self._live():
                        self._poller.stopping()
                        return
                    if not self._cond.wait(self.max_age):
                        break
                self._wake, self._busy = False, True
                requests = sorted(r for r, s in self._requests.items() if s in IN_FLIGHT)
                jobs = sorted(self._live())
                self._in_round = frozenset(requests) | frozenset(jobs)
            try:
                self._round_trip(requests, jobs)
                self.unavailable = self.unavailable_since = None
            except sky_api.SkyPilotUnavailable as e:
                self._failed_round(str(e))
                logger.warning(f"SkyPilot status round failed: {e}")
            except Exception as e:  # keep polling: one bad round must not stop every task's tracking
                self._failed_round(f"{type(e).__name__}: {e}")
                logger.exception("SkyPilot status round failed")
            with self._cond:
                self._round += 1
                self._busy = False
                self._cond.notify_all()

    def _failed_round(self, why: str) -> None:
        self.unavailable = why
        if self.unavailable_since is None:
            self.unavailable_since = time.monotonic()

    def outage_seconds(self) -> float:
        """How long SkyPilot has been unreachable (0 when the last round worked)."""
        since = self.unavailable_since
        return 0.0 if since is None else time.monotonic() - since

    def held(self) -> Dict[str, int]:
        """How many launches and jobs it holds (see retention)."""
        with self._cond:
            return {
                "tracker.requests": len(self._requests),
                "tracker.launches": len(self._launches),
                "tracker.launch_asked": len(self._launch_asked),
                "tracker.asked": len(self._asked),
                "tracker.records": len(self._records),
            }

    def _live(self) -> list:
        now = time.monotonic()
        for job_id, at in list(self._asked.items()):
            if now - at > _FORGET_AFTER_S:
                del self._asked[job_id]
                self._records.pop(job_id, None)
        for request_id, at in list(self._launch_asked.items()):  # e.g. a batch's, whose members all went
            if now - at > _FORGET_AFTER_S:
                del self._launch_asked[request_id]
                self._launches.pop(request_id, None)
        return [j for j in self._asked if not status.job_finished(self._records.get(j))]

    def _round_trip(self, requests: list, jobs: list) -> None:
        if requests:
            self.calls += 1
            states = self._sky.request_states(requests)
            finished = []
            for request_id in requests:
                state = states.get(request_id, "UNKNOWN")  # UNKNOWN: the server no longer knows it
                if state in IN_FLIGHT:
                    with self._cond:
                        self._requests[request_id] = state
                else:
                    finished.append(request_id)
            if finished:  # each finished launch is resolved to its job id once, a few at a time
                with ThreadPoolExecutor(min(_SETTLE_THREADS, len(finished))) as pool:
                    list(pool.map(self._settle, finished))
        if jobs:
            self.calls += 1
            records = self._sky.queue(jobs)
            with self._cond:  # not for jobs forgotten while the call was out
                self._records.update({j: r for j, r in records.items() if j in self._asked})

    def _settle(self, request_id: str) -> None:
        with self._cond:
            self.calls += 1
        try:
            job_ids = tuple(self._sky.launched_job_ids(request_id))
            outcome = Launch("SUCCEEDED", job_id=job_ids[0], job_ids=job_ids)
        except sky_api.LaunchCancelled as e:
            outcome = Launch("CANCELLED", error=str(e))
        except sky_api.LaunchFailed as e:
            outcome = Launch("FAILED", error=str(e), retryable=e.retryable)
        with self._cond:
            if request_id in self._requests:  # not forgotten meanwhile
                self._launches[request_id] = outcome
                self._launch_asked[request_id] = time.monotonic()
                self._requests.pop(request_id, None)
