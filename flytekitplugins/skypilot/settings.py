"""The connector's own settings, from its environment, validated once with errors that name the variable
(a connector's Runtime reads them when it is built)."""

import os
import re
from typing import Dict, List, Optional

from pydantic import BaseModel, Field, ValidationError, field_validator

from . import credentials

ENDPOINT_ENV = "SKYPILOT_API_SERVER_ENDPOINT"
POLL_INTERVAL_ENV = "FLYTE_SKYPILOT_POLL_INTERVAL"
OUTAGE_DEADLINE_ENV = "FLYTE_SKYPILOT_OUTAGE_DEADLINE"
BATCH_WINDOW_ENV = "FLYTE_SKYPILOT_BATCH_WINDOW"
INFRA_RELAUNCHES_ENV = "FLYTE_SKYPILOT_INFRA_RELAUNCHES"
STORAGE_SECRETS_ENV = "FLYTE_SKYPILOT_STORAGE_SECRETS"
STORAGE_ENDPOINT_ENV = "FLYTE_SKYPILOT_STORAGE_ENDPOINT"
FINISHED_GRACE_ENV = "FLYTE_SKYPILOT_FINISHED_GRACE"
FORGET_AFTER_ENV = "FLYTE_SKYPILOT_FORGET_AFTER"
API_SERVER_ACCESS_ENV = "FLYTE_SKYPILOT_API_SERVER_ACCESS"
_NAMES = {
    "endpoint": ENDPOINT_ENV,
    "poll_interval": POLL_INTERVAL_ENV,
    "outage_deadline": OUTAGE_DEADLINE_ENV,
    "batch_window": BATCH_WINDOW_ENV,
    "infra_relaunches": INFRA_RELAUNCHES_ENV,
    "storage_secrets": STORAGE_SECRETS_ENV,
    "storage_endpoint": STORAGE_ENDPOINT_ENV,
    "finished_grace": FINISHED_GRACE_ENV,
    "forget_after": FORGET_AFTER_ENV,
    "api_server_access": API_SERVER_ACCESS_ENV,
}
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    finished_grace: float = Field(
        600.0,
        ge=0,
        description=f"{FINISHED_GRACE_ENV}: seconds the connector keeps a finished (or deleted) task's state in "
        "memory after Flyte last asked about it",
    )
    forget_after: float = Field(
        3600.0,
        ge=1,
        description=f"{FORGET_AFTER_ENV}: seconds after which the connector drops the state of any task Flyte has "
        "not asked about since, finished or not (a task asked about later is found again from its launch record "
        "and SkyPilot)",
    )
    api_server_access: bool = Field(
        False,
        description=f"{API_SERVER_ACCESS_ENV}: whether jobs may call the SkyPilot API server (SkyPilot's "
        "`api_server_access`: the server's endpoint and, where it issues service accounts, a token that acts as "
        "the connector); managed jobs run without it",
    )

    storage_secrets: List[str] = Field(
        default_factory=list,
        description=f"{STORAGE_SECRETS_ENV}: comma-separated names of connector secrets every job gets, each as "
        "the job variable of its name (e.g. FLYTE_AWS_ACCESS_KEY_ID,FLYTE_AWS_SECRET_ACCESS_KEY): the "
        "credentials with which jobs read and write Flyte's object store",
    )
    storage_endpoint: Optional[str] = Field(
        None,
        description=f"{STORAGE_ENDPOINT_ENV}: an S3-compatible object store's URL, given to every job as "
        "FLYTE_AWS_ENDPOINT (unset: AWS S3 itself, or GCS / Azure by their own variables)",
    )

    @field_validator("endpoint", "storage_endpoint")
    @classmethod
    def _endpoint(cls, v: Optional[str], info) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{_NAMES[info.field_name]}={v!r} is not a URL: use http(s)://<host>:<port>")
        return v.rstrip("/") if v else v

    @field_validator("storage_secrets", mode="before")
    @classmethod
    def _storage_secrets(cls, v) -> List[str]:
        names = [n.strip() for n in v.split(",") if n.strip()] if isinstance(v, str) else list(v or [])
        bad = [n for n in names if not _VARIABLE.match(n)]
        if bad:
            raise ValueError(f"{bad} are not variable names: list secret names, e.g. FLYTE_AWS_ACCESS_KEY_ID")
        return names

    def storage_variables(self) -> List[str]:
        """The job variables that carry storage access (the connector's, never a task's to ask for)."""
        return [*self.storage_secrets, *(["FLYTE_AWS_ENDPOINT"] if self.storage_endpoint else [])]

    def storage_access(self) -> Dict[str, str]:
        """{job variable: value} of the storage access every job gets (values resolved now, never kept)."""
        return credentials.storage_access(self.storage_secrets, self.storage_endpoint)

    @classmethod
    def from_env(cls) -> "ConnectorSettings":
        values = {
            "endpoint": os.environ.get(ENDPOINT_ENV) or None,
            "poll_interval": os.environ.get(POLL_INTERVAL_ENV),
            "outage_deadline": os.environ.get(OUTAGE_DEADLINE_ENV),
            "batch_window": os.environ.get(BATCH_WINDOW_ENV),
            "infra_relaunches": os.environ.get(INFRA_RELAUNCHES_ENV),
            "storage_secrets": os.environ.get(STORAGE_SECRETS_ENV),
            "storage_endpoint": os.environ.get(STORAGE_ENDPOINT_ENV) or None,
            "finished_grace": os.environ.get(FINISHED_GRACE_ENV),
            "forget_after": os.environ.get(FORGET_AFTER_ENV),
            "api_server_access": os.environ.get(API_SERVER_ACCESS_ENV) or None,
        }
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            problems = "; ".join(f"{_NAMES[err['loc'][0]]}: {err['msg']}" for err in e.errors())
            raise ValueError(f"Invalid SkyPilot connector settings: {problems}") from None
