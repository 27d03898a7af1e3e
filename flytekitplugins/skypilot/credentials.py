"""Whose credentials go where.

- A task's secrets come from the connector's task-secret namespace, the secret group `skypilot_task`
  (env `_FSEC_SKYPILOT_TASK_<NAME>` or file `/etc/secrets/skypilot_task/<name>`; in a local `pyflyte run` also
  the user's own `<NAME>`), which holds none of the connector's own credentials.
- Every job gets storage access from the connector's settings: the storage endpoint and the connector secrets
  named by FLYTE_SKYPILOT_STORAGE_SECRETS (env `_FSEC_<NAME>` or `/etc/secrets/<name>`), as SkyPilot secrets
  under the variables flytekit reads in the job.
- The connector's own credentials (its API-server token, the storage secrets) are no task's to name.

Values leave this module only into a job's SkyPilot `secrets:`; `masked` takes them out of any text.
"""

import os
from typing import Dict, Iterable, List, Optional

import flytekit

TASK_SECRET_GROUP = "skypilot_task"
API_SERVER_TOKEN = "SKYPILOT_SERVICE_ACCOUNT_TOKEN"
S3_ENDPOINT_ENV = "FLYTE_AWS_ENDPOINT"  # where flytekit's S3 client (s3fs) in the job reads the endpoint
MASK = "********"


def task_secret_values(names: Optional[Iterable[str]], own: Iterable[str] = (), local: bool = False) -> Dict[str, str]:
    """The values of the secrets a task asks for. `own`: the connector's credentials besides its token (the
    storage secrets), which are refused; `local`: a local run, where the user's own `<NAME>` also counts."""
    names = list(names or [])
    refuse_own(names, own)
    values = {}
    for name in names:
        value = _task_secret(name, local)
        if value is None:
            where = f"_FSEC_SKYPILOT_TASK_{name.upper()} or a file /etc/secrets/{TASK_SECRET_GROUP}/{name.lower()}"
            raise ValueError(
                f"The task asks for secret {name!r}, which the connector does not have: give the connector an "
                f"environment variable {where} (in a local run, an environment variable {name} works too)"
            )
        values[name] = value
    return values


def refuse_own(names: Iterable[str], own: Iterable[str] = ()) -> None:
    """A task naming the connector's own credentials (its token, the storage secrets it gives every job)."""
    theirs = {API_SERVER_TOKEN, *(n.upper() for n in own)}
    taken = sorted(n for n in names if n.upper() in theirs)
    if taken:
        raise ValueError(
            f"secrets {taken} are the connector's own credentials, which no task's job may get from a secret "
            "request: give the task a secret of its own under another name (storage access reaches every job "
            "from the connector's settings, FLYTE_SKYPILOT_STORAGE_SECRETS)"
        )


def _task_secret(name: str, local: bool) -> Optional[str]:
    try:
        return flytekit.current_context().secrets.get(group=TASK_SECRET_GROUP, key=name)
    except ValueError:
        return os.environ.get(name) if local else None


def connector_secret(name: str) -> Optional[str]:
    """One of the connector's own secrets (env `_FSEC_<NAME>`, `/etc/secrets/<name>`, else its env `<NAME>`)."""
    try:
        return flytekit.current_context().secrets.get(key=name)
    except ValueError:
        return os.environ.get(name) or None


def storage_access(secret_names: Iterable[str], endpoint: Optional[str]) -> Dict[str, str]:
    """What every job gets to reach Flyte's object store: {job variable: value}."""
    access = {S3_ENDPOINT_ENV: endpoint} if endpoint else {}
    for name in secret_names:
        value = connector_secret(name)
        if value is None:
            raise ValueError(
                f"FLYTE_SKYPILOT_STORAGE_SECRETS names {name}, which the connector does not have: give it an "
                f"environment variable _FSEC_{name.upper()} or a file /etc/secrets/{name.lower()}"
            )
        access[name] = value
    return access


def with_storage_access(config: Dict, access: Dict[str, str]) -> Dict:
    """The job's YAML with storage access among its SkyPilot secrets."""
    if not access:
        return config
    return {**config, "secrets": {**(config.get("secrets") or {}), **access}}


def masked(text: str, task_secrets: Iterable[str], storage_secrets: Iterable[str] = ()) -> str:
    """`text` without the values of the task's secrets and of the storage secrets (a job may print what it was
    given, SkyPilot may quote what it substituted)."""
    values: List[str] = []
    for name in task_secrets:
        values += [v for v in (_task_secret(name, local=False), os.environ.get(name)) if v]
    values += [v for v in (connector_secret(n) for n in storage_secrets) if v]
    for value in sorted(set(values), key=len, reverse=True):
        if len(value) >= 4:  # shorter ones would mask ordinary words
            text = text.replace(value, MASK)
    return text
