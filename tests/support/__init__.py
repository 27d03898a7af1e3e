"""Helpers shared by the unit, contract and bed tests (and the benchmarks): propeller's side of the connector
calls, polling, and connector runtimes on the stand-in API server."""

import asyncio
import time

from .propeller import delete, execute, execution_metadata, outputs, prepare

__all__ = ["delete", "execute", "execution_metadata", "fake_runtime", "outputs", "prepare", "run", "wait_for"]


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def wait_for(predicate, timeout: float, every: float = 3.0, what: str = "condition", show=None):
    """Polls `predicate` until truthy; on time-out says what `show()` (the state watched) was last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"; last: {show()}" if show else ""))


def fake_runtime(server, **settings):
    """A connector Runtime of its own on a stand-in API server (benchmarks/fake_sdk.py), polling every second.
    `settings` override ConnectorSettings fields unvalidated (a test may want a 2 s outage deadline)."""
    from flytekitplugins.skypilot.runtime import Runtime
    from flytekitplugins.skypilot.settings import ConnectorSettings

    base = ConnectorSettings(poll_interval=1.0)
    return Runtime(settings=base.model_copy(update=settings), sdk=server.sdk())
