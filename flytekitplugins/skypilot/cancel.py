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
from typing import Callable, Dict, Optional, Tuple

from flytekit import logger

from . import sky_api
from .tracker import IN_FLIGHT, TRACKER, Launch

_BUDGET_S = 5.0  # propeller gives DeleteTask 10 s; a busy API server overruns a deadline by a call or two
_HAND_OFF_S = 2.0  # less time left than this: the background sweeper finishes the cancel
_SWEEP_EVERY_S = 5.0
_GIVE_UP_AFTER_S = 3600.0


def cancel(request_id: Optional[str], job_name: str) -> None:
    """Idempotent: a job that never started, already ended or was already cancelled is fine."""
    _or_in_background(lambda: _cancel(request_id, job_name), request_id, job_name, -1, f"managed job {job_name}")


def _cancel(request_id: Optional[str], job_name: str) -> None:
    if not request_id:  # a launch that never happened (or happened in a connector that restarted since)
        sky_api.cancel_by_name(job_name, wait_seconds=_BUDGET_S)
        return
    deadline = time.monotonic() + _BUDGET_S
    launch = TRACKER.launch(request_id)
    if launch.job_id is None and launch.state in IN_FLIGHT:
        sky_api.cancel_request(request_id, wait_seconds=2.0)
        launch = _settled(request_id, deadline - 3.0)
    left = deadline - time.monotonic()
    if left < _HAND_OFF_S:  # a slow API server: return inside propeller's budget, finish in the background
        _SWEEPER.add(request_id, job_name)
        return
    if launch.job_id is not None:
        sky_api.cancel_jobs([launch.job_id], wait_seconds=left)
    elif launch.state in IN_FLIGHT:
        _SWEEPER.add(request_id, job_name)
        return
    else:
        sky_api.cancel_by_name(job_name, wait_seconds=left)  # a job the aborted request created anyway
    TRACKER.forget(request_id, launch.job_id)


def cancel_member(request_id: Optional[str], batch_name: str, rank: int) -> None:
    """Cancels one subtask's job of a batched launch, and only it: its siblings share its job name and launch
    request, so neither is cancelled; a request still in flight is left to run and the job cancelled after."""
    _or_in_background(
        lambda: _cancel_member(request_id, batch_name, rank),
        request_id,
        batch_name,
        rank,
        f"job rank {rank} of {batch_name}",
    )


def _or_in_background(
    cancel_now: Callable[[], None], request_id: Optional[str], job_name: str, rank: int, what: str
) -> None:
    """Cancels now; if SkyPilot cannot take it, the sweeper keeps at it and the error says so."""
    try:
        cancel_now()
    except sky_api.SkyPilotUnavailable as e:
        _SWEEPER.add(request_id, job_name, rank)
        raise sky_api.SkyPilotUnavailable(
            f"{e}; the connector keeps cancelling {what} in the background and a repeated delete tries again"
        ) from None


def _cancel_member(request_id: Optional[str], batch_name: str, rank: int) -> None:
    if not request_id:  # not launched yet (its batch cancels it once it is), or by a connector that restarted
        job_ids = sky_api.job_ids_by_name(batch_name)
        if len(job_ids) > rank:
            sky_api.cancel_jobs([job_ids[rank]], wait_seconds=_BUDGET_S)
        return
    launch = TRACKER.launch(request_id)
    if launch.job_ids:
        sky_api.cancel_jobs([launch.job_ids[rank]], wait_seconds=_BUDGET_S)
    elif launch.state in IN_FLIGHT:
        _SWEEPER.add(request_id, batch_name, rank)


def _settled(request_id: str, deadline: float) -> Launch:
    launch = TRACKER.launch(request_id, fresh=True)
    while launch.state in IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.5)
        launch = TRACKER.launch(request_id, fresh=True)
    return launch


class _Sweeper:
    """Cancels the jobs of deleted tasks whose launch requests settle after delete returned."""

    def __init__(self) -> None:
        # (job name, batch rank or -1) -> (launch request id, since)
        self._pending: Dict[Tuple[str, int], Tuple[Optional[str], float]] = {}
        self._lock = threading.Lock()
        self._thread = None

    def add(self, request_id: Optional[str], job_name: str, rank: int = -1) -> None:
        with self._lock:
            self._pending.setdefault((job_name, rank), (request_id or None, time.monotonic()))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="skypilot-cancel-sweeper", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(_SWEEP_EVERY_S)
            with self._lock:
                pending = dict(self._pending)
            if not pending:
                return
            for (job_name, rank), (request_id, since) in pending.items():
                try:
                    done = self._sweep(request_id, job_name, since, rank)
                except sky_api.SkyPilotUnavailable as e:
                    logger.warning(f"cancel of {job_name} deferred: {e}")
                    done = False
                if done:
                    with self._lock:
                        self._pending.pop((job_name, rank), None)

    @staticmethod
    def _sweep(request_id: Optional[str], job_name: str, since: float, rank: int = -1) -> bool:
        launch = TRACKER.launch(request_id, fresh=True) if request_id else None
        if rank >= 0:  # one job of a batch: wait for the batch's launch, then cancel that job alone
            if launch is not None and launch.state in IN_FLIGHT:
                return time.monotonic() - since > _GIVE_UP_AFTER_S
            _cancel_member(request_id, job_name, rank)
            return True
        if launch is not None and launch.state in IN_FLIGHT:
            sky_api.cancel_request(request_id)
            return time.monotonic() - since > _GIVE_UP_AFTER_S
        if launch is not None and launch.job_id is not None:
            sky_api.cancel_jobs([launch.job_id])
        sky_api.cancel_by_name(job_name)
        if launch is not None:
            TRACKER.forget(request_id, launch.job_id)
        logger.info(f"cancelled managed job {job_name} in the background")
        return True


_SWEEPER = _Sweeper()
