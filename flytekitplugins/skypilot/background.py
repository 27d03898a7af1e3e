"""A daemon thread that does a connector's background work (status rounds, batch launches, cancels), started on
demand and gone once there is nothing left to do."""

import threading
from typing import Callable, Optional


class Worker:
    """Runs `work` on one daemon thread at a time. The owner calls `start()` and `stopping()` under its own lock,
    so work that arrives while the thread is on its way out starts a new one instead of being missed."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        self._name = name
        self._work = work
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Starts the thread unless one is running."""
        if not self.running:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def stopping(self) -> None:
        """Called by the thread, under the owner's lock, as it returns for lack of work."""
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
