"""Prometheus metrics of the connector's SkyPilot calls, served beside flytekit's own on the connector's
metrics port (`pyflyte serve connector --prometheus_port`). A no-op where prometheus-client is not installed."""

try:
    from prometheus_client import Counter, Histogram

    _CALLS = Counter("skypilot_connector_sdk_calls", "SkyPilot SDK calls made by the connector", ["call", "outcome"])
    _SECONDS = Histogram(
        "skypilot_connector_sdk_call_seconds",
        "Duration of the connector's SkyPilot SDK calls",
        ["call"],
        buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
    )
except ImportError:  # a local run without the connector extras
    _CALLS = _SECONDS = None


def observe(call: str, outcome: str, seconds: float) -> None:
    """One SkyPilot call: `outcome` is ok, unavailable (the API server could not be reached) or error."""
    if _CALLS is not None:
        _CALLS.labels(call=call, outcome=outcome).inc()
        _SECONDS.labels(call=call).observe(seconds)
