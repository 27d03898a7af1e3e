"""Delete while SkyPilot's API server cannot take the cancel: nothing is lost, the cancel goes on."""

import time

import pytest

from flytekitplugins.skypilot import cancel, sky_api
from flytekitplugins.skypilot.tracker import Tracker


def test_a_cancel_the_server_does_not_take_is_retried_in_the_background(monkeypatch):
    calls = []

    def cancel_by_name(job_name, wait_seconds=6.0):
        calls.append(job_name)
        if len(calls) == 1:  # an outage (or a server too slow to answer in time), then it is back
            raise sky_api.SkyPilotUnavailable("SkyPilot API server http://sky is unreachable (ReadTimeout)")

    monkeypatch.setattr(sky_api, "cancel_by_name", cancel_by_name)
    client = sky_api.Client()
    cancels = cancel.Cancels(client, Tracker(client, max_age=5.0), sweep_every=0.05)
    with pytest.raises(sky_api.SkyPilotUnavailable, match="keeps cancelling managed job flyte-x.*repeated delete"):
        cancels.cancel("", "flyte-x")  # propeller retries a failed delete; the connector does not wait for it
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == ["flyte-x", "flyte-x"]
    time.sleep(0.2)
    assert len(calls) == 2  # once SkyPilot took it, the sweeper stops
