"""The benchmarks' stand-in API server cannot drift from SkyPilot's SDK: same signatures, same return types."""

import pytest

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import sky_api


@pytest.fixture
def server():
    return FakeApiServer(launch_seconds=0.0, latency=NO_LATENCY)


def test_the_gateway_runs_unchanged_against_the_stand_in(server):
    client = sky_api.Client(server.sdk())
    request_id = client.launch(None, "flyte-bench-1")
    assert client.request_states([request_id]) == {request_id: "SUCCEEDED"}
    job_id = client.launched_job_id(request_id)
    record = client.queue([job_id])[job_id]
    assert record["job_name"] == "flyte-bench-1" and record["status"] == "PENDING"  # the real enum's value
    assert server.calls["queue_v2"] == 1 and server.calls["api_status"] == 1


def test_a_call_the_real_sdk_would_refuse_is_refused(server):
    with pytest.raises(TypeError):
        server.sdk().jobs.queue_v2(refresh=False, job_id=[1])  # the real parameter is job_ids
    with pytest.raises(TypeError):
        server.sdk().jobs.launch(None, name="x", priority=5)  # launch takes no priority argument
