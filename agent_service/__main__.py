"""`python -m agent_service`: validate the settings, then serve the connector (agent_service.server: flytekit's
connector services, ready when serving, draining on SIGTERM).

Settings come from the environment (see settings.py and the README): a bad one stops start-up with a message
that names it, before any port is opened.
"""

import os
import sys

from .settings import TOKEN_SECRET, ServiceSettings, service_account_token


def main() -> None:
    try:
        settings = ServiceSettings.from_env()
    except ValueError as e:
        sys.exit(f"agent_service: {e}")
    token = service_account_token()
    if token:
        os.environ[TOKEN_SECRET] = token  # where SkyPilot's SDK reads it; never logged
    os.environ["SKYPILOT_DISABLE_LOCAL_API_SERVER"] = "1"
    os.environ["FLYTE_SKYPILOT_WARM_UP"] = "1"  # the first CreateTask does not pay for importing SkyPilot
    os.environ.setdefault(
        "FLYTE_SDK_LOGGING_LEVEL", {"DEBUG": "10", "INFO": "20", "WARNING": "30", "ERROR": "40"}[settings.log_level]
    )
    print(
        f"agent_service: SkyPilot API server {settings.connector.endpoint}, token {'set' if token else 'not set'}, "
        f"poll every {settings.connector.poll_interval:g} s, outage deadline {settings.connector.outage_deadline:g} s",
        flush=True,
    )
    print(f"agent_service: {storage_summary(settings.connector)}", flush=True)
    os.environ.update(
        CONNECTOR_PORT=str(settings.port),
        CONNECTOR_PROMETHEUS_PORT=str(settings.prometheus_port),
        CONNECTOR_WORKERS=str(settings.workers),
        CONNECTOR_DRAIN_SECONDS=str(settings.drain_seconds),
        CONNECTOR_SHUTDOWN_GRACE_SECONDS=str(settings.shutdown_grace_seconds),
    )
    # a fresh interpreter: the settings above are in its environment before the connector is first imported
    os.execv(sys.executable, [sys.executable, "-m", "agent_service.server"])


def storage_summary(connector) -> str:
    if not connector.storage_variables():
        return (
            "storage for jobs: none configured (FLYTE_SKYPILOT_STORAGE_SECRETS, FLYTE_SKYPILOT_STORAGE_ENDPOINT "
            "unset): jobs reach Flyte's object store only by their cluster's own identity"
        )
    return f"storage for jobs: {', '.join(connector.storage_variables())} (values from the connector's secrets)"


if __name__ == "__main__":
    main()
