"""The service's settings: the plugin's own (endpoint, poll interval, outage deadline) plus serving ones."""

import os
from typing import Literal, Optional

from flytekit.extend.backend.utils import get_connector_secret
from pydantic import BaseModel, Field, ValidationError

from flytekitplugins.skypilot.settings import ConnectorSettings

TOKEN_SECRET = "SKYPILOT_SERVICE_ACCOUNT_TOKEN"  # a connector secret: env _FSEC_<NAME> or /etc/secrets/<name>
_SERVING_ENV = {
    "port": "CONNECTOR_PORT",
    "prometheus_port": "CONNECTOR_PROMETHEUS_PORT",
    "workers": "CONNECTOR_WORKERS",
    "log_level": "CONNECTOR_LOG_LEVEL",
    "drain_seconds": "CONNECTOR_DRAIN_SECONDS",
    "shutdown_grace_seconds": "CONNECTOR_SHUTDOWN_GRACE_SECONDS",
}


class ServiceSettings(BaseModel):
    connector: ConnectorSettings
    port: int = Field(8000, ge=1, le=65535)
    prometheus_port: int = Field(9090, ge=1, le=65535)
    workers: int = Field(10, ge=1, le=256)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # on SIGTERM: seconds still answering (while the pod leaves the Service's endpoints), then for calls in flight;
    # their sum stays below the pod's terminationGracePeriodSeconds (40 in k8s/deployment.yaml)
    drain_seconds: float = Field(10, ge=0, le=120)
    shutdown_grace_seconds: float = Field(15, ge=0, le=120)
    has_token: bool = False  # whether the service-account token secret is set (its value never leaves start-up)

    @classmethod
    def from_env(cls) -> "ServiceSettings":
        connector = ConnectorSettings.from_env()
        if connector.endpoint is None:
            raise ValueError(
                "SKYPILOT_API_SERVER_ENDPOINT is not set: give the URL of your SkyPilot API server "
                "(the connector never starts one of its own)"
            )
        connector.storage_access()  # every storage secret named is there (its value is not kept)
        values = {k: os.environ[env] for k, env in _SERVING_ENV.items() if os.environ.get(env)}
        try:
            return cls(connector=connector, has_token=service_account_token() is not None, **values)
        except ValidationError as e:
            problems = "; ".join(
                f"{_SERVING_ENV.get(err['loc'][0], err['loc'][0])}: {err['msg']}" for err in e.errors()
            )
            raise ValueError(f"Invalid connector service settings: {problems}") from None


def service_account_token() -> Optional[str]:
    """The SkyPilot service-account token from the connector's secrets (or the SDK's own variable)."""
    try:
        return get_connector_secret(TOKEN_SECRET)
    except ValueError:
        return os.environ.get(TOKEN_SECRET) or None
