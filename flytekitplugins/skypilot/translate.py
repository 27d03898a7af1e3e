"""Task template + `custom` -> SkyPilot task YAML dict -> `sky.Task`. Pure: no I/O, no API server calls."""

import shlex
from typing import Any, Dict, Optional

from flytekit.models.task import TaskTemplate

from . import sky_api

# pyflyte-execute exits 0 after a user exception unless this is set: the managed job must fail instead.
FAIL_ON_ERROR = {"FLYTE_FAIL_ON_ERROR": "true"}


def task_yaml(template: TaskTemplate, job_name: str, secrets: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The SkyPilot task YAML of the managed job that runs `template`'s command as `job_name`.

    `secrets` are the values the connector resolved for the names the task asked for; SkyPilot passes them
    to the job as environment variables and redacts them in what it shows.
    """
    if template.container is None:
        raise ValueError(
            f"Task {template.id.name} has no container (a pod_template?): a SkyPilot task runs the "
            "task's container command; remove pod_template from the task"
        )
    custom = _integral(template.custom or {})
    task = dict(custom.get("task", {}))
    task["name"] = job_name
    task["run"] = shlex.join(template.container.args)
    task["envs"] = {**(template.container.env or {}), **task.get("envs", {}), **FAIL_ON_ERROR}
    resources = dict(task.get("resources", {}))
    if not custom.get("on_host") and "image_id" not in resources:
        resources["image_id"] = f"docker:{template.container.image}"
    if resources:
        task["resources"] = resources
    if secrets:
        task["secrets"] = dict(secrets)
    return task


def _integral(value: Any) -> Any:
    """Undoes protobuf Struct's int -> float (`num_nodes: 2` arrives as 2.0, which SkyPilot refuses)."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def sky_task(config: Dict[str, Any]):
    """The `sky.Task` SkyPilot builds from this YAML dict (its own validation included)."""
    return sky_api.task_from_yaml(config)
