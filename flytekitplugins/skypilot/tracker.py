"""The process's shared view of SkyPilot: one queue poll per cycle for every tracked job.

Propeller asks GetTask for each task every ~30 s with a 10 s budget, and one `queue_v2` costs seconds on a
real API server (concurrent calls serialise). So no get() calls SkyPilot for itself: each reads a snapshot
that one `queue_v2(job_ids=<all tracked>)` refreshes at most once per `max_age` seconds, and launch
requests are resolved to job ids with one `api_status` call per cycle, once each.
"""

import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Set

from . import sky_api

# Jobs nobody has asked about for this long are dropped (their Flyte task is gone).
_FORGET_AFTER_S = 900.0
_NEW = "NEW"  # signed up, not polled yet
_IN_FLIGHT = (_NEW, "PENDING", "RUNNING")


@dataclass
class Launch:
    """What became of a launch request: a job id, or the request's state and SkyPilot's error."""

    state: str
    job_id: Optional[int] = None
    error: Optional[str] = None


class Tracker:
    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self.calls = 0  # SkyPilot calls made, for benchmarks and tests
        self._lock = threading.Lock()  # one SkyPilot round at a time; waiters reuse its result
        self._registry = threading.Lock()  # guards sign-ups, so a waiting caller's id joins the next round
        self._launches: Dict[str, Launch] = {}  # request id -> resolved outcome (final ones only)
        self._request_states: Dict[str, str] = {}
        self._requests_at = float("-inf")
        self._records: Dict[int, dict] = {}
        self._records_at = float("-inf")
        self._asked: Dict[int, float] = {}  # tracked job id -> when a get() last asked

    def watch(self, request_id: str) -> None:
        """Signs a launch request up for the next round of request polling."""
        with self._registry:
            if request_id not in self._launches:
                self._request_states.setdefault(request_id, _NEW)

    def launch(self, request_id: str, fresh: bool = False) -> Launch:
        """The outcome of a launch request so far (cached once it is final)."""
        self.watch(request_id)
        with self._lock:
            if request_id in self._launches:
                return self._launches[request_id]
            if fresh or self._request_states.get(request_id) == _NEW or self._stale(self._requests_at):
                self._poll_requests()
            state = self._request_states.get(request_id, "UNKNOWN")
            if state in _IN_FLIGHT:
                return Launch(state)
            return self._settle(request_id, state)

    def job(self, job_id: int) -> Optional[dict]:
        """The latest queue record of a managed job, from a snapshot at most `max_age` old."""
        now = time.monotonic()
        with self._registry:
            self._asked[job_id] = now
        with self._lock:
            record = self._records.get(job_id)
            if record is not None and _terminal(record):
                return record
            if self._stale(self._records_at) or (record is None and now - self._records_at > 1.0):
                self._poll_jobs(now)
            return self._records.get(job_id)

    def forget(self, request_id: str, job_id: Optional[int]) -> None:
        with self._lock, self._registry:
            self._launches.pop(request_id, None)
            self._request_states.pop(request_id, None)
            if job_id is not None:
                self._asked.pop(job_id, None)
                self._records.pop(job_id, None)

    def _stale(self, at: float) -> bool:
        return time.monotonic() - at > self.max_age

    def _poll_requests(self) -> None:
        with self._registry:
            pending = {r for r, s in self._request_states.items() if s in _IN_FLIGHT}
        self.calls += 1
        states = sky_api.request_states(sorted(pending))
        self._request_states.update(states)
        for rid in pending - set(states):  # not known to the server (restarted, or a foreign id)
            self._request_states[rid] = "UNKNOWN"
        self._requests_at = time.monotonic()

    def _settle(self, request_id: str, state: str) -> Launch:
        self.calls += 1
        try:
            outcome = Launch("SUCCEEDED", job_id=sky_api.launched_job_id(request_id))
        except sky_api.LaunchCancelled as e:
            outcome = Launch("CANCELLED", error=str(e))
        except sky_api.LaunchFailed as e:
            outcome = Launch("FAILED", error=str(e))
        self._launches[request_id] = outcome
        self._request_states.pop(request_id, None)
        return outcome

    def _poll_jobs(self, now: float) -> None:
        with self._registry:
            for job_id, at in list(self._asked.items()):
                if now - at > _FORGET_AFTER_S:
                    del self._asked[job_id]
                    self._records.pop(job_id, None)
            live: Set[int] = {j for j in self._asked if j not in self._records or not _terminal(self._records[j])}
        self.calls += 1
        self._records.update(sky_api.queue(sorted(live)))
        self._records_at = time.monotonic()


def _terminal(record: dict) -> bool:
    return str(record.get("status")) in ("SUCCEEDED", "CANCELLED") or str(record.get("status")).startswith("FAILED")


TRACKER = Tracker()
