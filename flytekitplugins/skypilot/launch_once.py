"""A task attempt's launch, made once however often propeller repeats CreateTask (in this process, or through the
attempt's launch record in one that restarted), and the managed job get then finds for the task."""

import threading
from typing import Any, Callable, Dict, Optional, Tuple

from flytekit import logger

from . import launch_record, sky_api
from .batches import Batches
from .pools import PoolLaunches
from .resource_meta import SkyPilotMetadata
from .tracker import Launch, Tracker

NO_JOB = "no job"  # what a task waits on when SkyPilot has no job for it (a launch lost to a connector restart)


class LaunchOnce:
    """Each attempt's launch request (or batch and rank), and the job ids found for launches of other processes."""

    def __init__(self, sky: sky_api.Client, tracker: Tracker, batches: Batches, pools: PoolLaunches) -> None:
        self._sky = sky
        self._tracker = tracker
        self._batches = batches
        self._pools = pools
        self._lock = threading.Lock()  # guards the maps below; never held across a SkyPilot call
        self._submitted: Dict[str, Optional[str]] = {}  # job name -> launch request id (None: deferred)
        self._joined: Dict[str, Tuple[str, int, Optional[str]]] = {}  # subtask -> (batch, rank, request id)
        self._running: Dict[str, threading.Event] = {}  # job name -> set once its first create ended
        self._found: Dict[Tuple[str, int], int] = {}  # (job name, rank) -> job id, for launches of other processes

    def launch(self, name: str, output_prefix: Optional[str], submit: Callable[[], Optional[str]]) -> Optional[str]:
        """Propeller may repeat CreateTask for one attempt (after a timeout, say): launch its job only once."""

        def first() -> Optional[str]:
            request_id = self._first_launch(name, output_prefix, submit)
            if request_id:
                self._tracker.watch(request_id)
            return request_id

        return self._once(self._submitted, name, first)

    def join(
        self, name: str, output_prefix: str, key: str, config: Dict, pool: Optional[str]
    ) -> Tuple[str, int, Optional[str]]:
        """A subtask joins one batch, however often propeller repeats its CreateTask."""
        return self._once(self._joined, name, lambda: self._first_join(name, output_prefix, key, config, pool))

    def _once(self, done: Dict[str, Any], name: str, first: Callable[[], Any]) -> Any:
        """`first()` for this attempt once; a repeat meanwhile waits for it, and tries itself if it failed."""
        while True:
            with self._lock:
                if name in done:
                    return done[name]
                running = self._running.get(name)
                if running is None:
                    running = self._running[name] = threading.Event()
                    break
            running.wait()
        try:
            value = first()
            with self._lock:
                done[name] = value
            return value
        finally:
            with self._lock:
                del self._running[name]
            running.set()

    def _first_launch(
        self, name: str, output_prefix: Optional[str], submit: Callable[[], Optional[str]]
    ) -> Optional[str]:
        """The attempt's launch request id: an earlier connector process's (see launch_record), or a new one.
        "" means SkyPilot has a job of this name whose launch request is unknown: get finds it by name. Without an
        output prefix to keep a record in, every first create asks SkyPilot by name."""
        earlier = launch_record.read(output_prefix, name) if output_prefix else {"job_name": name, "request_id": None}
        if earlier is not None:
            if earlier.get("request_id"):
                logger.info(f"managed job {name} was launched before (request {earlier['request_id']}): not again")
                return earlier["request_id"]
            found = self._sky.launch_request_named(name)  # the connector stopped between launch and record
            if found is None and self._sky.job_ids_by_name(name):
                found = ""
            if found is not None:
                logger.info(f"managed job {name} found in SkyPilot after a connector restart: not launched again")
                return found
        if output_prefix:
            launch_record.write(output_prefix, name, None)
        request_id = submit()
        if request_id:
            if output_prefix:
                launch_record.write(output_prefix, name, request_id)
            logger.info(f"SkyPilot launch request {request_id} submitted for managed job {name}")
        return request_id

    def _first_join(
        self, name: str, output_prefix: str, key: str, config: Dict, pool: Optional[str]
    ) -> Tuple[str, int, Optional[str]]:
        """The subtask's batch, rank and launch request: an earlier connector process's (see launch_record), or
        a place in this process's open batch."""
        earlier = launch_record.read(output_prefix, name)
        if earlier is not None and earlier.get("batch"):
            batch, rank = earlier["batch"], int(earlier["rank"])
            if earlier.get("request_id"):
                return batch, rank, earlier["request_id"]
            if len(self._sky.job_ids_by_name(batch)) > rank:  # launched, the record not updated
                return batch, rank, ""
        batch, rank = self._batches.join(key, name, output_prefix, config, pool)
        launch_record.write(output_prefix, name, None, batch=batch, rank=rank)
        return batch, rank, None

    def deferred(self, meta: SkyPilotMetadata):
        """This process's launch of the task still to come (a batch, or a cluster_name pool being created)."""
        return self._batches.pending(meta.job_name) if meta.batch_rank >= 0 else self._pools.pending(meta.job_name)

    def cached(self, meta: SkyPilotMetadata) -> Tuple[Optional[int], Optional[dict]]:
        """The job id and record the latest polling round has for this task, if it has them (no waiting)."""
        request_id = meta.request_id or getattr(self.deferred(meta), "request_id", None)
        launch = self._tracker.cached_launch(request_id) if request_id else None
        job_id = _job_of(launch, meta.batch_rank) if launch else self._found.get((meta.job_name, meta.batch_rank))
        return job_id, self._tracker.cached_job(job_id) if job_id is not None else None

    def job_id(self, meta: SkyPilotMetadata) -> Tuple[Optional[int], Any]:
        """The task's managed job id, or (None, what it waits on): its launch still to come (see deferred), its
        launch request's outcome so far (a tracker Launch), or NO_JOB."""
        request_id = meta.request_id
        if not request_id:
            pending = self.deferred(meta)
            if pending is None:  # launched by a connector process that has restarted since
                job_id = self._job_by_name(meta.job_name, meta.batch_rank)
                return job_id, NO_JOB if job_id is None else None
            if pending.request_id is None:
                return None, pending
            request_id = pending.request_id
        launch = self._tracker.launch(request_id)
        if launch.job_id is None:
            return None, launch
        return _job_of(launch, meta.batch_rank), None

    def _job_by_name(self, name: str, rank: int) -> Optional[int]:
        if (name, rank) not in self._found:
            ids = self._sky.job_ids_by_name(name)  # a batch's jobs, by rank: its job ids ascend with the ranks
            if len(ids) <= max(rank, 0):
                return None
            self._found[(name, rank)] = ids[rank] if rank >= 0 else ids[-1]
        return self._found[(name, rank)]


def _job_of(launch: Launch, rank: int) -> Optional[int]:
    """The job of this rank in a batched launch (the only job of a launch that is not batched)."""
    if rank < 0:
        return launch.job_id
    return launch.job_ids[rank] if len(launch.job_ids) > rank else None
