"""The connector's own settings, from its environment, validated once with errors that name the variable
(a connector's Runtime reads them when it is built)."""

import os
from typing import Optional

from pydantic import BaseModel, Field, ValidationError, field_validator

ENDPOINT_ENV = "SKYPILOT_API_SERVER_ENDPOINT"
POLL_INTERVAL_ENV = "FLYTE_SKYPILOT_POLL_INTERVAL"
OUTAGE_DEADLINE_ENV = "FLYTE_SKYPILOT_OUTAGE_DEADLINE"
BATCH_WINDOW_ENV = "FLYTE_SKYPILOT_BATCH_WINDOW"
INFRA_RELAUNCHES_ENV = "FLYTE_SKYPILOT_INFRA_RELAUNCHES"


class ConnectorSettings(BaseModel):
    endpoint: Optional[str] = Field(None, description=f"{ENDPOINT_ENV}: the SkyPilot API server")
    poll_interval: float = Field(5.0, ge=1, le=60, description=f"{POLL_INTERVAL_ENV}: seconds between status rounds")
    outage_deadline: float = Field(
        1800.0,
        ge=60,
        description=f"{OUTAGE_DEADLINE_ENV}: seconds SkyPilot may stay unreachable before tracked "
        "tasks fail (retryable); until then they keep their last known phase",
    )
    batch_window: float = Field(
        2.0,
        ge=0,
        le=30,
        description=f"{BATCH_WINDOW_ENV}: seconds a fan-out's subtasks may take to arrive and be "
        "launched as one SkyPilot request (0: every subtask launches alone)",
    )
    infra_relaunches: int = Field(
        3,
        ge=0,
        le=20,
        description=f"{INFRA_RELAUNCHES_ENV}: new SkyPilot jobs the connector launches within one Flyte attempt "
        "after an infra failure (FAILED_NO_RESOURCE, FAILED_CONTROLLER, a launch SkyPilot lost or never took), "
        "without spending the task's retries",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{ENDPOINT_ENV}={v!r} is not a URL: use http(s)://<host>:<port> of the API server")
        return v.rstrip("/") if v else v

    @classmethod
    def from_env(cls) -> "ConnectorSettings":
        values = {
            "endpoint": os.environ.get(ENDPOINT_ENV) or None,
            "poll_interval": os.environ.get(POLL_INTERVAL_ENV),
            "outage_deadline": os.environ.get(OUTAGE_DEADLINE_ENV),
            "batch_window": os.environ.get(BATCH_WINDOW_ENV),
            "infra_relaunches": os.environ.get(INFRA_RELAUNCHES_ENV),
        }
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            names = {
                "endpoint": ENDPOINT_ENV,
                "poll_interval": POLL_INTERVAL_ENV,
                "outage_deadline": OUTAGE_DEADLINE_ENV,
                "batch_window": BATCH_WINDOW_ENV,
                "infra_relaunches": INFRA_RELAUNCHES_ENV,
            }
            problems = "; ".join(f"{names[err['loc'][0]]}: {err['msg']}" for err in e.errors())
            raise ValueError(f"Invalid SkyPilot connector settings: {problems}") from None
