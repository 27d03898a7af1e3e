"""A task attempt's launches: the first, made once however often propeller repeats CreateTask (in this process, or
through the attempt's launch record in one that restarted) and carried on in the background when SkyPilot is slow
to take it; the relaunches after infra failures (the same attempt and job name); and the job get finds for it."""

import functools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from flytekit import logger

from . import credentials, launch_record, pools, sky_api, translate
from .batches import Batches
from .bounded import Flights
from .pools import PoolLaunches
from .resource_meta import SkyPilotMetadata
from .settings import ConnectorSettings
from .tracker import Launch, Tracker

NO_JOB = "no job"  # what a task waits on when SkyPilot has no job for it and no plan to launch one
RESTARTED = "a connector restart before the launch"
_ANOTHER_PROCESS_S = 120.0  # a launch intent younger than this may be another connector process's, still out


@dataclass
class Attempt:
    """One attempt's launches, all under its job name: the current one, and those spent on infra failures."""

    name: str
    output_prefix: Optional[str]  # where its launch record is kept (None: nowhere)
    plan: Optional[Dict[str, Any]] = None  # how to launch it again (translate.launch_plan); None: not known here
    request_id: Optional[str] = None  # the current launch request; "" a job of this name, its request unknown
    relaunches: int = 0
    why: str = ""  # what the latest relaunch was for
    spent_jobs: List[int] = field(default_factory=list)  # jobs of this attempt that failed for infra reasons
    spent_requests: List[str] = field(default_factory=list)
    error: Optional[str] = None  # no (further) launch: SkyPilot refused it, or the relaunches are spent
    retryable: bool = False  # of `error`
    unreachable: Optional[str] = None  # why the launch out now has not reached SkyPilot yet
    since: float = field(default_factory=time.monotonic)  # when the launch out now started
    abandoned: bool = False  # Flyte deleted the task: a launch that still comes is cancelled
    first: Optional[Future] = None  # the first launch, which CreateTask waits for
    # the secret values the create resolved, in memory only (a local run's are found in its context alone, not in
    # the background's); never in the record: another process resolves them again
    secrets: Optional[Dict[str, str]] = field(default=None, repr=False)

    def state(self) -> Dict[str, Any]:
        """What the launch record keeps of it."""
        return {
            "plan": self.plan,
            "relaunches": self.relaunches,
            "why": self.why,
            "spent_jobs": self.spent_jobs,
            "spent_requests": self.spent_requests,
        }


class LaunchOnce:
    """Each attempt's launches (or batch and rank), and the job ids found for launches of other processes."""

    def __init__(
        self,
        sky: sky_api.Client,
        tracker: Tracker,
        batches: Batches,
        pools: PoolLaunches,
        settings: ConnectorSettings,
        cancel: Callable[[Optional[str], str], None],
    ) -> None:
        self._sky = sky
        self._tracker = tracker
        self._batches = batches
        self._pools = pools
        self._settings = settings
        self._cancel = cancel  # for a launch that comes after Flyte deleted its task
        self._flights = Flights()
        self._lock = threading.Lock()  # guards the maps below; never held across a SkyPilot call
        self._attempts: Dict[str, Attempt] = {}  # job name -> its attempt's launches
        self._joined: Dict[str, Tuple[str, int, Optional[str]]] = {}  # subtask -> (batch, rank, request id)
        self._running: Dict[str, threading.Event] = {}  # subtask -> set once its first join ended
        self._found: Dict[Tuple[str, int], int] = {}  # (job name, rank) -> job id, for launches of other processes
        self._member_of: Dict[Tuple[str, int], str] = {}  # (batch, rank) -> the subtask's own job name

    def launch(
        self, name: str, output_prefix: Optional[str], plan: Dict[str, Any], secrets: Optional[Dict[str, str]] = None
    ) -> Future:
        """The attempt's first launch (its request id, None while deferred), started once however often propeller
        repeats CreateTask; a repeat after SkyPilot refused it tries again."""
        with self._lock:
            attempt = self._attempts.get(name)
            if attempt is None or (attempt.first is not None and attempt.first.done() and attempt.error):
                attempt = self._attempts[name] = Attempt(name, output_prefix, plan, secrets=secrets)
                attempt.first = self._flights.start(("launch", name), lambda: self._until_taken(attempt))
            elif attempt.first is None:  # known from its record only (see adopt): this create launches nothing
                attempt.first = Future()
                attempt.first.set_result(attempt.request_id)
            return attempt.first

    def attempt(self, name: str) -> Optional[Attempt]:
        return self._attempts.get(name)

    def abandon(self, name: str) -> Optional[str]:
        """Flyte deleted the task: a launch still out is cancelled when it comes; returns the current request."""
        with self._lock:
            attempt = self._attempts.get(name)
            if attempt is None:
                return None
            attempt.abandoned = True
            return attempt.request_id

    def relaunch(self, meta: SkyPilotMetadata, why: str, job_id: Optional[int]) -> Attempt:
        """After an infra failure of the attempt's job `job_id` (or of its launch): its next launch, started in the
        background, unless the relaunches are spent (its error then says so). Blocking: may read the record."""
        request_id = self._request_of(meta)
        attempt = self._attempt_of(meta)
        with self._lock:
            moved_on = request_id and attempt.request_id and attempt.request_id != request_id
            if moved_on or job_id in attempt.spent_jobs or attempt.error or attempt.abandoned:
                return attempt  # relaunched already (here or by another process), or nothing more to launch
            limit = self._settings.infra_relaunches
            if attempt.plan is None or attempt.relaunches >= limit:
                spent = f"after {attempt.relaunches} relaunch(es)" if attempt.plan else "with no plan to relaunch it"
                attempt.error, attempt.retryable = f"{why} {spent} (FLYTE_SKYPILOT_INFRA_RELAUNCHES={limit})", True
                return attempt
            attempt.relaunches, attempt.why, attempt.since = attempt.relaunches + 1, why, time.monotonic()
            attempt.spent_jobs += [job_id] if job_id is not None else []
            attempt.spent_requests += [attempt.request_id] if attempt.request_id else []
            attempt.request_id, attempt.unreachable = None, None
        logger.warning(f"relaunching managed job {meta.job_name} after {why} ({attempt.relaunches} of {limit})")
        self._flights.start(("relaunch", meta.job_name), lambda: self._until_taken(attempt))
        return attempt

    def _until_taken(self, attempt: Attempt) -> Optional[str]:
        """Launches the attempt, again while SkyPilot cannot be reached (up to the outage deadline)."""
        while True:
            try:
                request_id = self._launch_new(attempt)
                break
            except sky_api.SkyPilotUnavailable as e:
                attempt.unreachable = str(e)
                if attempt.abandoned or time.monotonic() - attempt.since > self._settings.outage_deadline:
                    attempt.error, attempt.retryable = f"SkyPilot did not take the launch: {e}", True
                    return None
                time.sleep(self._settings.poll_interval)
            except Exception as e:  # SkyPilot refused the task: a create still waiting raises it, get reports it
                attempt.error = f"{type(e).__name__}: {sky_api.clean(e)}"
                attempt.retryable = getattr(e, "retryable", False)
                raise
        attempt.unreachable, attempt.request_id = None, request_id
        if request_id:
            self._tracker.watch(request_id)
        if attempt.abandoned and request_id is not None:
            self._cancel_quietly(request_id, attempt.name)
        return request_id

    def _cancel_quietly(self, request_id: str, name: str) -> None:
        try:
            self._cancel(request_id, name)
        except sky_api.SkyPilotUnavailable as e:  # the cancel sweeper keeps at it
            logger.warning(f"cancel of {name}, launched after its task was deleted, deferred: {e}")

    def _launch_new(self, attempt: Attempt) -> Optional[str]:
        """A new launch request for the attempt, unless its record or SkyPilot shows one (a connector that
        stopped between launching and recording). Without an output prefix, SkyPilot is always asked."""
        name, prefix = attempt.name, attempt.output_prefix
        earlier = launch_record.read(prefix, name) if prefix else {"job_name": name, "request_id": None}
        if earlier is not None:
            if earlier.get("request_id") and earlier["request_id"] not in attempt.spent_requests:
                logger.info(f"managed job {name} was launched before (request {earlier['request_id']}): not again")
                return earlier["request_id"]
            found = self._sky.launch_request_named(name)
            if found is None and self._live_ids(name, attempt):
                found = ""
            if found is not None:
                logger.info(f"managed job {name} found in SkyPilot after a connector restart: not launched again")
                return found
        if prefix:
            launch_record.write(prefix, name, None, **attempt.state())
        request_id = self._submit(name, attempt.plan, attempt.secrets)
        if request_id:
            if prefix:
                _record_quietly(prefix, name, request_id, attempt.state())
            logger.info(f"SkyPilot launch request {request_id} submitted for managed job {name}")
        return request_id

    def _live_ids(self, name: str, attempt: Attempt) -> List[int]:
        return [j for j in self._sky.job_ids_by_name(name) if j not in attempt.spent_jobs]

    def _submit(self, name: str, plan: Dict[str, Any], secrets: Optional[Dict[str, str]] = None) -> Optional[str]:
        """sky.jobs.launch of the plan's task (SkyPilot's own validation first); a cluster_name task's launch
        waits for its pool (None: it follows, see pools)."""
        config = translate.planned_task_yaml(plan, secrets)
        task = translate.sky_task(credentials.with_storage_access(config, self._settings.storage_access()))
        cluster = plan.get("cluster_name")
        if cluster:
            pool_yaml = pools.pool_task_yaml(plan["task"])
            return self._pools.launch(task, name, cluster, functools.partial(translate.sky_task, pool_yaml))
        return self._sky.launch(task, name, plan.get("pool"))

    def _attempt_of(self, meta: SkyPilotMetadata) -> Attempt:
        """The attempt as this process knows it, or as its launch record tells (blocking: reads the record)."""
        with self._lock:
            if meta.job_name in self._attempts:
                return self._attempts[meta.job_name]
        record = launch_record.read(meta.output_prefix, meta.job_name) if meta.output_prefix else None
        attempt = Attempt(meta.job_name, meta.output_prefix if record else None)
        record = record or {}
        attempt.plan = record.get("plan")
        attempt.request_id = record.get("request_id") or meta.request_id or None
        attempt.relaunches, attempt.why = int(record.get("relaunches") or 0), record.get("why") or ""
        attempt.spent_jobs = list(record.get("spent_jobs") or [])
        attempt.spent_requests = list(record.get("spent_requests") or [])
        if attempt.request_id is None and time.time() - float(record.get("at") or 0) > _ANOTHER_PROCESS_S:
            attempt.since = time.monotonic() - _ANOTHER_PROCESS_S  # not another process's launch still out
        with self._lock:
            return self._attempts.setdefault(meta.job_name, attempt)

    def join(
        self, name: str, output_prefix: str, key: str, config: Dict, pool: Optional[str]
    ) -> Tuple[str, int, Optional[str]]:
        """A subtask joins one batch, however often propeller repeats its CreateTask."""
        joined = self._once(self._joined, name, lambda: self._first_join(name, output_prefix, key, config, pool))
        with self._lock:
            self._member_of[joined[:2]] = name
        return joined

    def forget(self, name: str, rank: int) -> None:
        """Drops what this process keeps of a done task (see retention): its attempt, or its batch place."""
        with self._lock:
            self._found.pop((name, rank), None)
            if rank < 0:
                self._attempts.pop(name, None)
                return
            member = self._member_of.pop((name, rank), None)
            if member is not None:
                self._joined.pop(member, None)

    def known_ids(self, meta: SkyPilotMetadata) -> Tuple[List[str], List[int]]:
        """The launch requests and jobs this process tracked for the task, spent ones included (no waiting)."""
        request_id = self._request_of(meta)
        launch = self._tracker.cached_launch(request_id) if request_id else None
        jobs = [_job_of(launch, meta.batch_rank) if launch else None, self._found.get((meta.job_name, meta.batch_rank))]
        requests = [request_id, meta.request_id]
        attempt = self._attempts.get(meta.job_name) if meta.batch_rank < 0 else None
        if attempt is not None:
            requests, jobs = requests + attempt.spent_requests, jobs + attempt.spent_jobs
        return sorted({r for r in requests if r}), sorted({j for j in jobs if j is not None})

    def held(self) -> Dict[str, int]:
        with self._lock:
            return {
                "launches.attempts": len(self._attempts),
                "launches.joined": len(self._joined),
                "launches.running": len(self._running),
                "launches.found": len(self._found),
                "launches.member_of": len(self._member_of),
                "launches.flights": self._flights.held(),
            }

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
        request_id = self._request_of(meta)
        launch = self._tracker.cached_launch(request_id) if request_id else None
        job_id = _job_of(launch, meta.batch_rank) if launch else None
        if launch is None and not request_id:  # found by name (a launch of another process), unless spent
            job_id = self._found.get((meta.job_name, meta.batch_rank))
            attempt = self._attempts.get(meta.job_name)
            job_id = None if attempt is not None and job_id in attempt.spent_jobs else job_id
        return job_id, self._tracker.cached_job(job_id) if job_id is not None else None

    def _request_of(self, meta: SkyPilotMetadata) -> Optional[str]:
        """The task's current launch request as far as this process knows (None while a relaunch is out)."""
        attempt = self._attempts.get(meta.job_name) if meta.batch_rank < 0 else None
        if attempt is not None and (attempt.request_id is not None or attempt.relaunches or attempt.error):
            return attempt.request_id
        return meta.request_id or getattr(self.deferred(meta), "request_id", None)

    def job_id(self, meta: SkyPilotMetadata) -> Tuple[Optional[int], Any]:
        """The task's managed job id, or (None, what it waits on): its launch still to come (see deferred), its
        attempt's launch being submitted, relaunched or refused (an Attempt), its launch request's outcome so far
        (a tracker Launch), or NO_JOB."""
        attempt = self._attempts.get(meta.job_name) if meta.batch_rank < 0 else None
        if attempt is None and meta.batch_rank < 0 and not meta.request_id and not self._pools.pending(meta.job_name):
            attempt = self._adopt(meta)
        if attempt is not None and (attempt.request_id is None or attempt.error):
            if attempt.error or not self._pools.pending(meta.job_name):
                return None, attempt
        request_id = attempt.request_id if attempt is not None and attempt.request_id is not None else meta.request_id
        if not request_id:
            pending = self.deferred(meta)
            if pending is None:  # launched by a connector process that restarted since
                spent = attempt.spent_jobs if attempt is not None else []
                job_id = self._job_by_name(meta.job_name, meta.batch_rank, spent)
                return job_id, NO_JOB if job_id is None else None
            if pending.request_id is None:
                return None, pending
            request_id = pending.request_id
        launch = self._tracker.launch(request_id)
        if launch.job_id is None:
            return None, launch
        return _job_of(launch, meta.batch_rank), None

    def _adopt(self, meta: SkyPilotMetadata) -> Attempt:
        """A task this process has not launched: its record's launch, SkyPilot's job of its name, or (its launch
        lost to a connector restart) a relaunch from the record's plan."""
        attempt = self._attempt_of(meta)
        if attempt.request_id is not None or attempt.error or attempt.relaunches:
            return attempt
        found = self._sky.launch_request_named(meta.job_name)
        if found is None and self._live_ids(meta.job_name, attempt):
            found = ""
        if found is not None or attempt.plan is None:
            attempt.request_id = found or ""  # "": found by name, or NO_JOB when SkyPilot has none
        elif time.monotonic() - attempt.since >= _ANOTHER_PROCESS_S:
            self.relaunch(meta, RESTARTED, None)
        return attempt

    def _job_by_name(self, name: str, rank: int, spent: List[int]) -> Optional[int]:
        known = self._found.get((name, rank))
        if known is None or known in spent:
            ids = [j for j in self._sky.job_ids_by_name(name) if j not in spent]  # a batch's, by rank: ascending
            if len(ids) <= max(rank, 0):
                return None
            self._found[(name, rank)] = ids[rank] if rank >= 0 else ids[-1]
        return self._found[(name, rank)]


def _record_quietly(prefix: str, name: str, request_id: str, state: Dict[str, Any]) -> None:
    """Records a launch SkyPilot took: a failure to record it must not fail (and so orphan) the launch."""
    try:
        launch_record.write(prefix, name, request_id, **state)
    except Exception as e:  # a repeat finds the launch by name instead
        logger.warning(f"launch of {name} (request {request_id}) not recorded in {prefix}: {e}")


def _job_of(launch: Launch, rank: int) -> Optional[int]:
    """The job of this rank in a batched launch (the only job of a launch that is not batched)."""
    if rank < 0:
        return launch.job_id
    return launch.job_ids[rank] if len(launch.job_ids) > rank else None
