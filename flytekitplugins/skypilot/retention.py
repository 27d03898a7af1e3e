"""How long the connector keeps a task's state in memory: a connector runs for months, so what it holds per task
(its attempt, batch place, tracked launch and job, log tail, cost report, last answer) is dropped once the task is
done with. A task is done with once its final phase was answered (or Flyte deleted it) and nobody asked about it
for the finished grace (FLYTE_SKYPILOT_FINISHED_GRACE), or, finished or not, once nobody asked about it for
FLYTE_SKYPILOT_FORGET_AFTER (propeller never came back for it). A task asked about again afterwards is found
again as after a connector restart (its launch record, SkyPilot's job of its name).
"""

import threading
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

from flytekit import logger

from .background import Worker

_SWEEP_MAX_S = 30.0  # the longest a sweep waits for the next one
_SWEEP_MIN_S = 0.05

TaskKey = Tuple[str, int]  # (job name, batch rank or -1)


class Retention:
    """Every task this process holds state for, by when it was last asked about; `forget(key, meta)` drops one
    task's state everywhere, called from a sweeper thread that runs while anything is kept."""

    def __init__(self, grace: float, forget_after: float, forget: Callable[[TaskKey, object], None]) -> None:
        self.grace = grace
        self.forget_after = forget_after
        self._forget = forget
        self._lock = threading.Lock()
        self._live: OrderedDict[TaskKey, float] = OrderedDict()  # not finished: key -> last asked (oldest first)
        self._finished: OrderedDict[TaskKey, float] = OrderedDict()  # final phase answered, or deleted
        self._metas: Dict[TaskKey, object] = {}  # key -> the task's latest resource meta
        self._sweeper = Worker("skypilot-retention", self._run)

    def touch(self, key: TaskKey, meta: object, finished: bool = False) -> None:
        """A Flyte call about the task: it stays at least `grace` (finished) or `forget_after` (not) from now."""
        now = time.monotonic()
        with self._lock:
            self._metas[key] = meta
            if finished or key in self._finished:
                self._live.pop(key, None)
                self._finished[key] = now
                self._finished.move_to_end(key)
            else:
                self._live[key] = now
                self._live.move_to_end(key)
            self._sweeper.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._metas)

    def __contains__(self, key: TaskKey) -> bool:
        with self._lock:
            return key in self._metas

    def sweep(self) -> int:
        """Forgets the tasks whose time is up; returns how many."""
        now = time.monotonic()
        with self._lock:
            due = _expired(self._finished, now - self.grace) + _expired(self._live, now - self.forget_after)
            gone = [(key, self._metas.pop(key)) for key in due]
        for key, meta in gone:
            try:
                self._forget(key, meta)
            except Exception:  # one task's leftovers must not stop the sweeps
                logger.exception(f"dropping the state of task {key[0]} (rank {key[1]}) failed")
        return len(gone)

    def _run(self) -> None:
        every = min(_SWEEP_MAX_S, max(_SWEEP_MIN_S, self.grace / 2))
        while True:
            time.sleep(every)
            self.sweep()
            with self._lock:
                if not self._metas:
                    self._sweeper.stopping()
                    return


def _expired(touched: OrderedDict[TaskKey, float], before: float) -> List[TaskKey]:
    """Pops the keys last touched before `before` (the dict is ordered by last touch)."""
    due = []
    while touched:
        key, at = next(iter(touched.items()))
        if at >= before:
            break
        touched.popitem(last=False)
        due.append(key)
    return due
