"""Cancelling a task's managed job at any stage, including while its launch request is still in flight.

A launch request that is aborted late may still have created its job (SkyPilot reports the request
CANCELLED, the job runs on). So after aborting the request we also cancel by the task's deterministic job
name; a request still unsettled when delete must return (propeller allows 10 s) is handed to a background
sweeper that does the same once it settles. So is a cancel SkyPilot did not accept because its API server was
unreachable or too slow: the sweeper retries it, and delete raises so that propeller retries too (a delete is
idempotent, and propeller's retries outlive a connector restart).
"""

import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from flytekit import logger

from . import sky_api
from .background import Worker
from .tracker import IN_FLIGHT, Launch, Tracker

_BUDGET_S = 5.0  # propeller gives DeleteTask 10 s; a busy API server overruns a deadline by a call or two
_HAND_OFF_S = 2.0  # less time left than this: the background sweeper finishes the cancel
_SWEEP_EVERY_S = 5.0
_GIVE_UP_AFTER_S = 3600.0


class Cancels:
    """The connector's cancels: at once where SkyPilot allows, else by the background sweeper."""

    def __init__(self, sky: sky_api.Client, tracker: Tracker, sweep_every: float = _SWEEP_EVERY_S) -> None:
        self._sky = sky
        self._tracker = tracker
        self._sweeper = _Sweeper(self, sweep_every)

    def cancel(self, request_id: Optional[str], job_name: str) -> None:
        """Idempotent: a job that never started, already ended or was already cancelled is fine."""
        what = f"managed job {job_name}"
        self._or_in_background(lambda: self._cancel(request_id, job_name), request_id, job_name, -1, what)

    def cancel_earlier(self, job_names: List[str]) -> None:
        """Cancels, in the background, any live job or in-flight launch of these earlier attempts of a node: propeller
        never deletes an attempt whose CreateTask failed or ran past its deadline."""
        for name in job_names:
            self._sweeper.add(None, name)

    def later(self, request_id: Optional[str], job_name: str, rank: int = -1) -> None:
        """Hands a cancel that did not finish in time to the background sweeper."""
        self._sweeper.add(request_id, job_name, rank)

    def cancel_member(self, request_id: Optional[str], batch_name: str, rank: int) -> None:
        """Cancels one subtask's job of a batched launch, and only it: its siblings share its job name and launch
        request, so neither is cancelled; a request still in flight is left to run and the job cancelled after."""
        what = f"job rank {rank} of {batch_name}"
        self._or_in_background(
            lambda: self._cancel_member(request_id, batch_name, rank), request_id, batch_name, rank, what
        )

    def _or_in_background(
        self, cancel_now: Callable[[], None], request_id: Optional[str], job_name: str, rank: int, what: str
    ) -> None:
        """Cancels now; if SkyPilot cannot take it, the sweeper keeps at it and the error says so."""
        try:
            cancel_now()
        except sky_api.SkyPilotUnavailable as e:
            self._sweeper.add(request_id, job_name, rank)
            raise sky_api.SkyPilotUnavailable(
                f"{e}; the connector keeps cancelling {what} in the background and a repeated delete tries again"
            ) from None

    def held(self) -> Dict[str, int]:
        return {"cancels.pending": self._sweeper.held()}

    def _cancel(self, request_id: Optional[str], job_name: str) -> None:
        if not request_id:  # a launch that never happened (or happened in a connector that restarted since)
            self._sky.cancel_by_name(job_name, wait_seconds=_BUDGET_S)
            return
        deadline = time.monotonic() + _BUDGET_S
        launch = self._tracker.launch(request_id)
        if launch.job_id is None and launch.state in IN_FLIGHT:
            self._sky.cancel_request(request_id, wait_seconds=2.0)
            launch = self._settled(request_id, deadline - 3.0)
        left = deadline - time.monotonic()
        if left < _HAND_OFF_S:  # a slow API server: return inside propeller's budget, finish in the background
            self._sweeper.add(request_id, job_name)
            return
        if launch.job_id is not None:
            self._sky.cancel_jobs([launch.job_id], wait_seconds=left)
        elif launch.state in IN_FLIGHT:
            self._sweeper.add(request_id, job_name)
            return
        else:
            self._sky.cancel_by_name(job_name, wait_seconds=left)  # a job the aborted request created anyway
        self._tracker.forget(request_id, launch.job_id)

    def _cancel_member(self, request_id: Optional[str], batch_name: str, rank: int) -> None:
        if not request_id:  # not launched yet (its batch cancels it once it is), or by a connector that restarted
            job_ids = self._sky.job_ids_by_name(batch_name)
            if len(job_ids) > rank:
                self._sky.cancel_jobs([job_ids[rank]], wait_seconds=_BUDGET_S)
            return
        launch = self._tracker.launch(request_id)
        if launch.job_ids:
            self._sky.cancel_jobs([launch.job_ids[rank]], wait_seconds=_BUDGET_S)
        elif launch.state in IN_FLIGHT:
            self._sweeper.add(request_id, batch_name, rank)

    def _settled(self, request_id: str, deadline: float) -> Launch:
        launch = self._tracker.launch(request_id, fresh=True)
        while launch.state in IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.5)
            launch = self._tracker.launch(request_id, fresh=True)
        return launch

    def sweep(self, request_id: Optional[str], job_name: str, since: float, rank: int = -1) -> bool:
        """One attempt of the sweeper at a deferred cancel; True once done (or given up)."""
        launch = self._tracker.launch(request_id, fresh=True) if request_id else None
        if rank >= 0:  # one job of a batch: wait for the batch's launch, then cancel that job alone
            if launch is not None and launch.state in IN_FLIGHT:
                return time.monotonic() - since > _GIVE_UP_AFTER_S
            self._cancel_member(request_id, job_name, rank)
            return True
        if launch is not None and launch.state in IN_FLIGHT:
            self._sky.cancel_request(request_id)
            return time.monotonic() - since > _GIVE_UP_AFTER_S
        in_flight = None if request_id else self._sky.launch_request_named(job_name)
        if in_flight is not None:  # a launch of that name still out in SkyPilot (its request id unknown here)
            self._sky.cancel_request(in_flight)
            return time.monotonic() - since > _GIVE_UP_AFTER_S
        if launch is not None and launch.job_id is not None:
            self._sky.cancel_jobs([launch.job_id])
        self._sky.cancel_by_name(job_name)
        if launch is not None:
            self._tracker.forget(request_id, launch.job_id)
        logger.info(f"cancelled managed job {job_name} in the background")
        return True


class _Sweeper:
    """Cancels the jobs of deleted tasks whose launch requests settle after delete returned."""

    def __init__(self, cancels: Cancels, every: float) -> None:
        self._cancels = cancels
        self._every = every
        # (job name, batch rank or -1) -> (launch request id, since)
        self._pending: Dict[Tuple[str, int], Tuple[Optional[str], float]] = {}
        self._lock = threading.Lock()
        self._worker = Worker("skypilot-cancel-sweeper", self._run)

    def add(self, request_id: Optional[str], job_name: str, rank: int = -1) -> None:
        with self._lock:
            self._pending.setdefault((job_name, rank), (request_id or None, time.monotonic()))
            self._worker.start()

    def held(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            time.sleep(self._every)
            with self._lock:
                pending = dict(self._pending)
                if not pending:
                    self._worker.stopping()
                    return
            for (job_name, rank), (request_id, since) in pending.items():
                try:
                    done = self._cancels.sweep(request_id, job_name, since, rank)
                except sky_api.SkyPilotUnavailable as e:
                    logger.warning(f"cancel of {job_name} deferred: {e}")
                    done = False
                if done:
                    with self._lock:
                        self._pending.pop((job_name, rank), None)
