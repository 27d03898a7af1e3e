"""Blocking work behind Flyte's calls, each bounded: propeller counts a GetTask that fails or runs past its
deadline against the task and ends an attempt whose CreateTask does, so a call answers within its budget and
the work it started goes on in the background (one at a time per key: a hanging server does not pile up threads).
"""

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, Hashable, Tuple

CREATE_BUDGET_S = 3.5  # propeller gives CreateTask 10 s; ours returns inside 5 s, whatever SkyPilot does
GET_BUDGET_S = 3.5  # the same for GetTask (a fresh process's SDK import and first round included)
DELETE_BUDGET_S = 6.0  # DeleteTask's is 10 s too; a cancel not taken by then goes on in the background


class Flights:
    """Keyed blocking calls on daemon threads: a call still running for a key is joined, not started again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Dict[Hashable, Future] = {}

    def start(self, key: Hashable, fn: Callable[[], Any]) -> Future:
        with self._lock:
            future = self._running.get(key)
            if future is not None:
                return future
            future = self._running[key] = Future()
        threading.Thread(target=self._run, args=(key, fn, future), name=f"skypilot-{key}"[:60], daemon=True).start()
        return future

    def held(self) -> int:
        with self._lock:
            return len(self._running)

    def _run(self, key: Hashable, fn: Callable[[], Any], future: Future) -> None:
        try:
            future.set_result(fn())
        except BaseException as e:  # handed to whoever awaits it
            future.set_exception(e)
        finally:
            with self._lock:
                self._running.pop(key, None)


async def within(future: Future, seconds: float) -> Tuple[bool, Any]:
    """(True, result) if `future` finishes within `seconds` (its exception raised), else (False, None); never
    cancels it: the work goes on."""
    wrapped = asyncio.wrap_future(future)
    done, _ = await asyncio.wait({wrapped}, timeout=max(seconds, 0.0))
    if not done:
        wrapped.add_done_callback(_consume)  # finished later: nobody reads its outcome here
        return False, None
    return True, wrapped.result()


def _consume(future: "asyncio.Future") -> None:
    if not future.cancelled():
        future.exception()
