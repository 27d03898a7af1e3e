"""Where a connector process's state lives: one Runtime owns its settings, SkyPilot client, status tracker,
batches, pool launches, log tails, cancels and each attempt's launch; both registered connectors share it."""

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
from .results import Results
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
        if os.environ.get(WARM_UP_ENV) == "1":  # a connector server (agent_service sets it): import SkyPilot now
            sky_api.warm_up()
