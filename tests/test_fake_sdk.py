"""The benchmarks' stand-in API server cannot drift from SkyPilot's SDK: same signatures, same return types."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fake_sdk import FakeApiServer  # noqa: E402

from flytekitplugins.skypilot import sky_api  # noqa: E402


@pytest.fixture
def server(monkeypatch):
    server = FakeApiServer(launch_seconds=0.0, latency={k: 0.0 for k in ("launch", "api_status", "get", "queue_v2")})
    real = sky_api._sky()
    fake = server.sdk()
    namespace = SimpleNamespace(**{**vars(real), "sky": fake.sky, "jobs": fake.jobs})
    monkeypatch.setattr(sky_api, "_sky", lambda: namespace)
    return server


def test_the_gateway_runs_unchanged_against_the_stand_in(server):
    request_id = sky_api.launch(None, "flyte-bench-1")
    assert sky_api.request_states([request_id]) == {request_id: "SUCCEEDED"}
    job_id = sky_api.launched_job_id(request_id)
    record = sky_api.queue([job_id])[job_id]
    assert record["job_name"] == "flyte-bench-1" and record["status"] == "PENDING"  # the real enum's value
    assert server.calls["queue_v2"] == 1 and server.calls["api_status"] == 1


def test_a_call_the_real_sdk_would_refuse_is_refused(server):
    with pytest.raises(TypeError):
        server.sdk().jobs.queue_v2(refresh=False, job_id=[1])  # the real parameter is job_ids
    with pytest.raises(TypeError):
        server.sdk().jobs.launch(None, name="x", priority=5)  # launch takes no priority argument
