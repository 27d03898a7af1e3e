"""Task template + `custom` -> SkyPilot task YAML dict -> `sky.Task`, without API server calls. The only I/O: a
YAML task with outputs on a shared local prefix gets its output directory created (see yaml_io.job_output_dir)."""

import copy
import shlex
from typing import Any, Dict, List, Optional

from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate

from . import credentials, distributed, settings, sky_api, yaml_io

# pyflyte-execute exits 0 after a user exception unless this is set: the managed job must fail instead.
FAIL_ON_ERROR = {"FLYTE_FAIL_ON_ERROR": "true"}
DEFAULT_IMAGE = "cr.flyte.org/flyteorg/flytekit:"  # flytekit's default images: no plugins, no user code


def task_yaml(
    template: TaskTemplate,
    job_name: str,
    secrets: Optional[Dict[str, str]] = None,
    inputs: Optional[LiteralMap] = None,
    output_prefix: str = "",
) -> Dict[str, Any]:
    """The SkyPilot task YAML of the managed job that runs `template` as `job_name`.

    `secrets` are the values the connector resolved for the names the task asked for; SkyPilot passes them
    to the job as environment variables and redacts them in what it shows.
    """
    if is_yaml_task(template):
        return _yaml_task(template, job_name, secrets, inputs, output_prefix)
    if template.container is None:
        raise ValueError(
            f"Task {template.id.name} has no container (a pod_template?): a SkyPilot task runs the "
            "task's container command; remove pod_template from the task"
        )
    custom = _integral(template.custom or {})
    task = dict(custom.get("task", {}))
    task["name"] = job_name
    args = list(template.container.args)
    task["run"] = distributed.run_command(args) if task.get("num_nodes", 1) > 1 else shlex.join(args)
    task["envs"] = {**(template.container.env or {}), **task.get("envs", {}), **FAIL_ON_ERROR}
    resources = dict(task.get("resources", {}))
    if not custom.get("on_host") and "image_id" not in resources:
        resources["image_id"] = f"docker:{job_image(template)}"
    if resources:
        task["resources"] = resources
    if secrets:
        task["secrets"] = job_secrets(custom, secrets)
    return task


def job_image(template: TaskTemplate) -> str:
    """The image the job runs in: the task's own, never Flyte's default (which lacks this plugin)."""
    image = template.container.image
    if image.startswith(DEFAULT_IMAGE):
        raise ValueError(
            f"Task {template.id.name} runs in Flyte's default image {image}, which lacks flytekitplugins-skypilot "
            "and the task's code: give the task container_image=<an image with both> (or an ImageSpec), or "
            "SkyPilot(on_host=True) on hosts that provide them"
        )
    return image


def job_secrets(custom: Dict[str, Any], values: Dict[str, str]) -> Dict[str, str]:
    """The job's secret variables: a Flyte secret request under the name flytekit reads (_FSEC_<GROUP>_<KEY>)."""
    env_of = custom.get("secret_env") or {}
    return {env_of.get(name, name): value for name, value in values.items()}


def refuse_connector_credentials(names: Optional[List[str]]) -> None:
    """At declaration: the connector's API-server token (its storage secrets are known only to it: see create)."""
    credentials.refuse_own(names or [])


def secret_values(names: Optional[List[str]], own: Optional[List[str]] = None, local: bool = False) -> Dict[str, str]:
    """The connector's values for the secret names a task asks for, from its task-secret namespace."""
    return credentials.task_secret_values(names, own or [], local)


def launch_plan(config: Dict[str, Any], custom: Dict[str, Any]) -> Dict[str, Any]:
    """What any connector process needs to launch the job (again): its YAML with the secrets' names, never their
    values (kept in the attempt's launch record), and where it runs."""
    names = list(custom.get("secrets") or [])
    task = {k: v for k, v in config.items() if k != "secrets"}
    return {
        "task": task,
        "secret_env": job_secrets(custom, {n: n for n in names}),
        "pool": custom.get("pool"),
        "cluster_name": custom.get("cluster_name"),
    }


def planned_task_yaml(plan: Dict[str, Any], values: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The job's YAML from a launch plan, with the connector's secret values (`values` as the create resolved
    them, else looked up now); a fresh copy: SkyPilot consumes it."""
    config = copy.deepcopy(plan["task"])
    secret_env = plan.get("secret_env") or {}
    if secret_env:
        names = sorted(set(secret_env.values()))
        values = values if values is not None and set(names) <= set(values) else secret_values(names)
        config["secrets"] = {env: values[name] for env, name in secret_env.items()}
    return config


def with_execution_envs(config: Dict[str, Any], envs: Optional[Dict[str, str]], in_run: bool = False) -> Dict[str, Any]:
    """The job with the execution's environment (propeller's `environment_variables`: `--envs`, launch plan envs,
    a map subtask's array index) below the task's own envs. `in_run` sets them in the job's command instead,
    for a batch whose jobs share one `envs:` but each run their own subtask's command."""
    own = config.get("envs") or {}
    extra = {k: str(v) for k, v in (envs or {}).items() if k not in own}
    if not extra:
        return config
    if in_run:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(extra.items()))
        return {**config, "run": f"export {exports}; {config['run']}"}
    return {**config, "envs": {**extra, **own}}


def with_api_server_access(config: Dict[str, Any], allowed: bool) -> Dict[str, Any]:
    """The job with SkyPilot's `api_server_access` as the connector allows it. SkyPilot turns it on by default:
    the job then gets the API server's endpoint and, where the server issues service accounts, a token acting as
    whoever launched it (the connector). A managed job needs neither to run, so it is off unless allowed."""
    if allowed:
        return config
    if config.get("api_server_access"):
        raise ValueError(
            "api_server_access: true asks for a SkyPilot API-server token acting as the connector, which this "
            f"connector does not give jobs ({settings.API_SERVER_ACCESS_ENV} is off): remove it from the task "
            f"YAML, or have the connector's operators set {settings.API_SERVER_ACCESS_ENV}=true"
        )
    return {**config, "api_server_access": False}


def is_yaml_task(template: TaskTemplate) -> bool:
    return "env_of_input" in (template.custom or {})


def _yaml_task(
    template: TaskTemplate,
    job_name: str,
    secrets: Optional[Dict[str, str]],
    inputs: Optional[LiteralMap],
    output_prefix: str,
) -> Dict[str, Any]:
    """A SkyPilot YAML task: its own `run`, its envs set from the task's inputs, outputs under $FLYTE_OUTPUT_DIR."""
    custom = _integral(template.custom)
    task = copy.deepcopy(custom["task"])
    task["name"] = job_name
    task["envs"] = {**task.get("envs", {}), **yaml_io.env_values(inputs, custom["env_of_input"])}
    if custom.get("outputs"):
        out_dir, upload = yaml_io.job_output_dir(output_prefix, job_name)
        task["envs"][yaml_io.OUTPUT_DIR_ENV] = out_dir
        if upload:
            task["run"] = yaml_io.with_upload(task.get("run") or "", out_dir, upload)
    if secrets:
        task["secrets"] = job_secrets(custom, secrets)
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
