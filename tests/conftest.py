"""Test-wide safety: no SDK call may start a SkyPilot API server, and nothing calls home."""

import os

os.environ["SKYPILOT_DISABLE_LOCAL_API_SERVER"] = "1"
for _name, _value in {
    "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
    "SKYPILOT_USAGE_LOG_URL": "http://127.0.0.1:9",
    "SKYPILOT_SCARF_GATEWAY_URL": "http://127.0.0.1:9",
}.items():
    os.environ.setdefault(_name, _value)
