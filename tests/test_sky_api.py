"""The gateway's judgement of SkyPilot's errors, on SkyPilot's own exception classes."""

import pytest
from sky import exceptions

from flytekitplugins.skypilot import sky_api


@pytest.mark.parametrize(
    "error, permanent",
    [
        (ValueError("bad"), True),
        (exceptions.ResourcesUnavailableError("no H100 anywhere"), True),
        (exceptions.InvalidSkyPilotConfigError("bad config"), True),
        (exceptions.NotSupportedError("no"), True),
        (KeyError("server-side bug"), False),
        (RuntimeError("controller died"), False),
    ],
)
def test_request_errors_are_permanent_and_others_retryable(error, permanent):
    assert sky_api._is_request_error(error) is permanent


def test_clean_strips_terminal_colours():
    assert sky_api.clean("\x1b[1msky gpus list\x1b[0m to list") == "sky gpus list to list"


def test_the_gateway_forbids_starting_a_local_api_server():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SKYPILOT_DISABLE_LOCAL_API_SERVER"}
    code = "import os, flytekitplugins.skypilot.sky_api; print(os.environ.get('SKYPILOT_DISABLE_LOCAL_API_SERVER'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_an_unanswering_loopback_server_is_reported_as_unavailable():
    # A loopback endpoint that does not answer makes the SDK try to start a local server, which is forbidden:
    # SkyPilot's own refusal must reach the user as "the server is not answering", naming the endpoint.
    from sky.server import common

    refuse = sky_api._on_server(common.check_local_api_server_enabled_or_raise)
    with pytest.raises(sky_api.SkyPilotUnavailable, match=f"{sky_api.endpoint()} is not answering"):
        refuse()
