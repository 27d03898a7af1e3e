"""Where a connector process's state lives: one Runtime owns its settings, SkyPilot client, status tracker,
batches, pool launches, log tails, cancels and each attempt's launch; both registered connectors share it. Its
retention drops a task's state everywhere once the task is done with (see retention)."""

import os
from types import SimpleNamespace
from typing import Dict, Optional, Set, Tuple

from flytekit.extend.backend.base_connector import Resource

from . import sky_api
from .batches import Batches
from .bounded import Flights
from .cancel import Cancels
from .job_log import Tails
from .launch_once import LaunchOnce
from .pools import PoolLaunches
from .resource_meta import SkyPilotMetadata
from .results import Results
from .retention import Retention, TaskKey
from .settings import ConnectorSettings
from .tracker import Tracker

# Importing SkyPilot in the background while another thread imports it deadlocks (its import cycles): only a
# connector server, whose other threads do not import SkyPilot, warms it up at start-up.
WARM_UP_ENV = "FLYTE_SKYPILOT_WARM_UP"


class Runtime:
    """One connector process's state. `settings` default to the environment's; `sdk` stands in for parts of
    SkyPilot's SDK (a FakeApiServer's `sdk()` in tests and benchmarks; SkyPilot's own by default)."""

    def __init__(self, settings: Optional[ConnectorSettings] = None, sdk: Optional[SimpleNamespace] = None) -> None:
        self.settings = settings if settings is not None else ConnectorSettings.from_env()
        self.sky = sky_api.Client(sdk)
        self.tracker = Tracker(self.sky, max_age=self.settings.poll_interval)
        self.cancels = Cancels(self.sky, self.tracker)
        self.batches = Batches(self.sky, self.tracker, self.settings, cancel_member=self.cancels.cancel_member)
        self.pools = PoolLaunches(self.sky, self.tracker)
        self.tails = Tails(self.sky)
        self.launches = LaunchOnce(self.sky, self.tracker, self.batches, self.pools, self.settings, self.cancels.cancel)
        self.results = Results(self.tracker, self.tails, self.settings)
        self.flights = Flights()  # the blocking part of each get / delete, bounded (see bounded)
        self.last_known: Dict[Tuple[str, int], Resource] = {}  # (job name, batch rank) -> what get last answered
        self.aborted: Set[Tuple[str, int]] = set()  # (job name, batch rank) of the tasks Flyte deleted here
        self.retention = Retention(self.settings.finished_grace, self.settings.forget_after, self.forget)
        if os.environ.get(WARM_UP_ENV) == "1":  # a connector server (agent_service sets it): import SkyPilot now
            sky_api.warm_up()

    def forget(self, key: TaskKey, meta: SkyPilotMetadata) -> None:
        """Drops one done task's state from every part (memory only, no SkyPilot call); a batch's launch request
        goes with its last subtask."""
        name, rank = key
        requests, jobs = self.launches.known_ids(meta)
        self.launches.forget(name, rank)
        if rank >= 0 and not self.batches.forget(name, rank):
            requests = []  # its siblings' too
        if rank < 0:
            self.pools.forget(name)
        for request_id in requests:
            self.tracker.forget(request_id, None)
        for job_id in jobs:
            self.tracker.forget(None, job_id)
        self.results.forget(key)  # its jobs' reports and log tails
        self.last_known.pop(key, None)
        self.aborted.discard(key)

    def held(self) -> Dict[str, int]:
        """How much per-task state each part holds now (for the soak benchmark and tests)."""
        return {
            "retention.tasks": len(self.retention),
            "runtime.last_known": len(self.last_known),
            "runtime.aborted": len(self.aborted),
            "runtime.flights": self.flights.held(),
            **self.tracker.held(),
            **self.launches.held(),
            **self.batches.held(),
            **self.pools.held(),
            **self.cancels.held(),
            **self.tails.held(),
            **self.results.held(),
        }
