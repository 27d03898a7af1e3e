"""`cluster_name`: the tasks that name one cluster run on one SkyPilot pool, kept warm between them.

The pool is created from the first such task's resources (`setup` and `file_mounts` included, one worker)
when SkyPilot has no pool of that name, and is never torn down by the plugin: `sky jobs pool down <name>`
when it is no longer wanted. A new pool takes a minute or more to exist, longer than propeller gives
CreateTask, so the first task's launch follows in the background once SkyPilot has registered the pool;
get reports WAITING_FOR_RESOURCES meanwhile.
"""

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Set

from flytekit import logger

from . import sky_api
from .tracker import Tracker

_REGISTER_TIMEOUT_S = 600.0  # how long a pool being created may take to appear in SkyPilot's pool list
_POLL_S = 3.0


def pool_task_yaml(task_yaml: Dict[str, Any]) -> Dict[str, Any]:
    """The pool a cluster_name task creates: its resources, setup (with its envs) and file mounts, one worker."""
    pool = {k: copy.deepcopy(task_yaml[k]) for k in ("resources", "setup", "envs", "file_mounts") if task_yaml.get(k)}
    return {**pool, "pool": {"workers": 1}}


@dataclass
class PendingLaunch:
    request_id: Optional[str] = None  # set once the job's launch request is submitted
    error: Optional[str] = None  # set when the pool could not be created or the launch not submitted
    abandoned: bool = False  # deleted before it launched
    launching: bool = False  # sky.jobs.launch is out: an abandon waits for its request id


class PoolLaunches:
    """Launches of cluster_name tasks, each once its pool exists."""

    def __init__(self, sky: sky_api.Client, tracker: Tracker) -> None:
        self._sky = sky
        self._tracker = tracker
        self._lock = threading.Condition()  # guards the state below; never held across a SkyPilot call
        self._ready: Set[str] = set()  # pools known to exist
        self._creating: Dict[str, threading.Event] = {}  # pool -> set once its creation ended (either way)
        self._pending: Dict[str, PendingLaunch] = {}  # job name -> its launch

    def launch(self, task: Any, name: str, pool: str, pool_task: Callable[[], Any]) -> Optional[str]:
        """The launch request id when the pool is known to exist; else None, the launch following later."""
        with self._lock:
            ready = pool in self._ready
            if not ready and name not in self._pending:
                self._pending[name] = PendingLaunch()
                threading.Thread(
                    target=self._launch_when_ready,
                    args=(task, name, pool, pool_task),
                    name=f"pool-launch-{name}",
                    daemon=True,
                ).start()
        return self._sky.launch(task, name, pool) if ready else None

    def pending(self, name: str) -> Optional[PendingLaunch]:
        return self._pending.get(name)

    def abandon(self, name: str) -> Optional[str]:
        """Stops a launch that has not happened yet; returns its request id if it already has."""
        with self._lock:
            pending = self._pending.get(name)
            if pending is None:
                return None
            pending.abandoned = True
            while pending.launching:  # submitted but not answered: its request id is what delete must cancel
                self._lock.wait()
            return pending.request_id

    def forget(self, name: str) -> None:
        """Drops a done task's launch (see retention), unless it is being submitted right now."""
        with self._lock:
            pending = self._pending.get(name)
            if pending is not None and not pending.launching:
                del self._pending[name]

    def held(self) -> Dict[str, int]:
        with self._lock:
            return {"pools.pending": len(self._pending), "pools.creating": len(self._creating)}

    def _launch_when_ready(self, task: Any, name: str, pool: str, pool_task: Callable[[], Any]) -> None:
        with self._lock:
            pending = self._pending.get(name)
        if pending is None:  # forgotten before this thread ran (see retention)
            return
        try:
            self._ensure(pool, pool_task)
            with self._lock:
                if pending.abandoned:
                    return
                pending.launching = True
            request_id = self._sky.launch(task, name, pool)
            with self._lock:
                pending.request_id = request_id
            self._tracker.watch(request_id)
            logger.info(f"SkyPilot launch request {request_id} submitted for managed job {name} on pool {pool}")
        except Exception as e:  # reported by get; the task fails with it
            pending.error = f"{type(e).__name__}: {sky_api.clean(e)}"
        finally:
            with self._lock:
                pending.launching = False
                self._lock.notify_all()

    def _ensure(self, pool: str, pool_task: Callable[[], Any]) -> None:
        """Returns once the pool exists: one creation per pool, however many tasks wait for it."""
        while True:
            with self._lock:
                if pool in self._ready:
                    return
                creation = self._creating.get(pool)
                if creation is None:  # this thread creates it (or finds it exists)
                    creation = self._creating[pool] = threading.Event()
                    break
            creation.wait()  # another thread's creation; if it failed, this one tries again
        try:
            if not self._sky.pool_exists(pool):
                self._create(pool, pool_task)
            with self._lock:
                self._ready.add(pool)
        finally:
            with self._lock:
                del self._creating[pool]
            creation.set()

    def _create(self, pool: str, pool_task: Callable[[], Any]) -> None:
        request_id = self._sky.pool_apply(pool_task(), pool)
        logger.info(f"creating SkyPilot pool {pool} (request {request_id}) for the tasks with cluster_name={pool!r}")
        deadline = time.monotonic() + _REGISTER_TIMEOUT_S
        while not self._sky.pool_exists(pool):
            state = self._sky.request_states([request_id]).get(request_id)
            if state in ("FAILED", "CANCELLED") or time.monotonic() > deadline:
                raise RuntimeError(
                    f"SkyPilot could not create pool {pool!r} (request {request_id}: {state}); "
                    f"see `sky api logs {request_id}`"
                )
            time.sleep(_POLL_S)
