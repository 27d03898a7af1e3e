"""`SkyPilotYamlTask`: an existing SkyPilot task YAML, `run` and all, as a typed Flyte task.

Inputs are bound to the YAML's `envs` (as `sky jobs launch --env NAME=value` would set them); outputs are
files the job writes under `$FLYTE_OUTPUT_DIR/<output name>` (a number, a string or a boolean as text; a
FlyteFile as a file; a FlyteDirectory as a directory). The job needs neither flytekit nor this plugin.
"""

import datetime
import os
from typing import Any, Dict, Optional, Type, Union

from flytekit.core.base_task import PythonTask, TaskMetadata
from flytekit.core.interface import Interface
from flytekit.extend.backend.base_connector import AsyncConnectorExecutorMixin
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from . import task_settings
from .config import read_task_yaml, secret_names
from .connector import TASK_TYPE, TASK_TYPE_VERSION
from .task import submit_locally
from .yaml_io import OUTPUT_DIR_ENV

# Python type -> how its value travels: into an env var (inputs) and out of $FLYTE_OUTPUT_DIR (outputs).
KINDS: Dict[type, str] = {
    int: "integer",
    float: "float",
    str: "string",
    bool: "boolean",
    FlyteFile: "file",
    FlyteDirectory: "directory",
}
_INPUT_ONLY = {datetime.datetime: "datetime", datetime.timedelta: "duration"}
_NOT_FOR_A_YAML_TASK = {
    "workdir": "it would be uploaded from wherever the job is launched (the connector): put the code in the "
    "image, in a bucket under file_mounts, or fetch it in `setup`",
    "service": "a SkyServe service is not a Flyte task",
    "pool": "a pool spec creates a pool; pass pool=<name> to SkyPilotYamlTask to run on an existing one",
}


class SkyPilotYamlTask(AsyncConnectorExecutorMixin, PythonTask):
    """Runs a SkyPilot task YAML unchanged as a managed job, through the same `skypilot` connector.

    `inputs` name the YAML's `envs` (case-insensitively: input `epochs` sets `EPOCHS`); `outputs` name the
    files the job writes under `$FLYTE_OUTPUT_DIR`. `secrets:` in the YAML are names; the connector holds
    the values.
    """

    _TASK_TYPE = TASK_TYPE

    def __init__(
        self,
        name: str,
        task: Union[str, "os.PathLike[str]", Dict[str, Any]],
        inputs: Optional[Dict[str, Type]] = None,
        outputs: Optional[Dict[str, Type]] = None,
        pool: Optional[str] = None,
        **kwargs,
    ) -> None:
        self._sky_task = load_task_yaml(task)
        try:  # Flyte's own settings: into the YAML, into the task's metadata, or refused here
            self._secret_env = task_settings.fold_into_yaml(self._sky_task, kwargs)
        except ValueError as e:
            raise ValueError(f"Task {name}: {e}") from None
        settings = {k: kwargs.pop(k) for k in task_settings.YAML_TASK_METADATA if k in kwargs}
        if settings:  # retries, timeout, cache: Flyte itself honours them, as for any task
            kwargs["metadata"] = TaskMetadata(**settings)
        inputs, outputs = dict(inputs or {}), dict(outputs or {})
        self._env_of = bind_inputs(self._sky_task, inputs)
        self._output_kinds = {k: _kind(k, t, "output", KINDS) for k, t in outputs.items()}
        self._pool = pool
        interface = Interface(inputs=inputs, outputs=outputs)
        super().__init__(
            task_type=TASK_TYPE, task_type_version=TASK_TYPE_VERSION, name=name, interface=interface, **kwargs
        )

    def get_custom(self, settings) -> Dict[str, Any]:
        return {
            "task": self._sky_task,
            "pool": self._pool,
            "secrets": sorted({*(self._sky_task.get("secrets") or {}), *self._secret_env}),
            "secret_env": dict(self._secret_env),
            "env_of_input": self._env_of,
            "outputs": self._output_kinds,
        }

    def execute(self, **kwargs) -> Any:
        return submit_locally(self, kwargs)


def load_task_yaml(source: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> Dict[str, Any]:
    """A SkyPilot task YAML fit to run as a Flyte task, checked against SkyPilot's own schema."""
    task = read_task_yaml(source)
    if not task.get("run"):
        raise ValueError("The SkyPilot YAML has no `run:`: a YAML task runs the YAML's own command")
    for key, why in _NOT_FOR_A_YAML_TASK.items():
        if task.get(key) is not None:
            raise ValueError(f"`{key}:` cannot be part of a YAML task: {why}")
    secret_names(task)  # names only: the connector holds the values
    task.pop("name", None)  # the connector names the job after the task execution
    task.setdefault("envs", {})
    return task


def bind_inputs(task: Dict[str, Any], inputs: Dict[str, Type]) -> Dict[str, str]:
    """Input name -> the YAML env it sets; every input must name one of the YAML's `envs`."""
    envs = task.get("envs") or {}
    by_lower = {k.lower(): k for k in envs}
    bound = {}
    for name, python_type in inputs.items():
        _kind(name, python_type, "input", {**KINDS, **_INPUT_ONLY})
        env = name if name in envs else by_lower.get(name.lower())
        if env is None:
            raise ValueError(
                f"input {name!r} matches none of the YAML's envs ({sorted(envs) or 'none declared'}): declare "
                f"`envs: {{{name.upper()}: <default>}}` in the YAML or rename the input"
            )
        bound[name] = env
    unset = sorted(k for k, v in envs.items() if v is None and k not in bound.values())
    if unset:
        raise ValueError(
            f"envs: {unset} have no value in the YAML and no input sets them: give each a default "
            f"in the YAML or add an input named {unset[0].lower()!r}"
        )
    return bound


def _kind(name: str, python_type: Type, what: str, kinds: Dict[type, str]) -> str:
    for t, kind in kinds.items():
        if python_type is t or (isinstance(python_type, type) and issubclass(python_type, t) and t is not int):
            return kind
    supported = ", ".join(t.__name__ for t in kinds)
    raise TypeError(
        f"{what} {name!r}: {getattr(python_type, '__name__', python_type)} cannot pass through a "
        f"SkyPilot YAML task's {'envs' if what == 'input' else '$' + OUTPUT_DIR_ENV}; use one of {supported}"
    )
