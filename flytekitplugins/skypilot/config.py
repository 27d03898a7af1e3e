"""`SkyPilot`: what a task declares, validated at declaration, kept in SkyPilot's task-YAML vocabulary."""

import re
from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import sky_api

# SkyPilot's own form for cpus / memory: a number, optionally followed by "+" (at least);
# memory may carry a unit ("32GB", "1TB+").
_CPUS = re.compile(r"^\d+(\.\d+)?\+?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGT]B?)?\+?$", re.IGNORECASE)
_ACCELERATOR = re.compile(r"^[A-Za-z0-9][\w.\-]*(:\d+(\.\d+)?)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The fields that go under `resources:` in a SkyPilot task YAML.
RESOURCE_FIELDS = ("infra", "cpus", "memory", "accelerators", "disk_size", "use_spot", "image_id")


class SkyPilot(BaseModel):
    """How a Flyte task runs as a SkyPilot managed job.

    Field names and values are those of SkyPilot's task YAML (`resources:`, `num_nodes`, `envs`, `setup`)
    and of `sky jobs launch` (`pool`). By default the job runs the task's container image (`image_id="docker:<task image>"`); set
    `on_host=True` for clusters without a container runtime (e.g. Slurm without Pyxis): the task's command
    then runs directly on the hosts, which must provide flytekit and the task's code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    infra: Optional[str] = Field(None, description='Where to run: "aws", "aws/us-east-1", "k8s/<context>", "slurm/<cluster>"')
    cpus: Union[int, float, str, None] = Field(None, description='vCPUs per node: 4, "4+" (at least 4)')
    memory: Union[int, float, str, None] = Field(None, description='GB per node: 16, "16+", "32GB"')
    accelerators: Union[str, Dict[str, Union[int, float]], List[str], None] = Field(
        None, description='"H100:8", {"H100": 8}, or a list of candidates ["H100:8", "A100-80GB:8"]'
    )
    disk_size: Optional[int] = Field(None, gt=0, description="OS disk size in GB")
    use_spot: Optional[bool] = None
    image_id: Optional[str] = Field(None, description='Overrides the image: "docker:<image>" or a VM image id')
    on_host: bool = Field(False, description="Run the command on the hosts directly instead of in the task image")
    num_nodes: int = Field(1, ge=1)
    envs: Dict[str, str] = Field(default_factory=dict)
    setup: Optional[str] = None
    pool: Optional[str] = Field(None, description="Name of an existing SkyPilot pool to run on")

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: Any) -> Any:
        if v is not None and not _CPUS.match(str(v)):
            raise ValueError(f'cpus={v!r} is not a count: use a number such as 4 or "4+" (at least 4)')
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        if v is not None and not _MEMORY.match(str(v)):
            raise ValueError(f'memory={v!r} is not a size: use GB such as 16, "16+" or "32GB"')
        return v

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, v: Any) -> Any:
        names = [v] if isinstance(v, str) else list(v) if v is not None else []
        for name in names:
            if not _ACCELERATOR.match(str(name)):
                raise ValueError(f'accelerators={v!r}: {name!r} is not "<name>[:<count>]", e.g. "H100:8"')
        if isinstance(v, dict) and any(count <= 0 for count in v.values()):
            raise ValueError(f"accelerators={v!r}: counts must be positive")
        return v

    @field_validator("infra")
    @classmethod
    def _infra(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        try:
            sky_api.check_infra(v)  # SkyPilot's own parser, offline
        except ValueError as e:
            raise ValueError(f'infra={v!r}: {e} (e.g. "aws/us-east-1", "k8s/my-context", "slurm/mycluster")')
        return v

    @field_validator("envs")
    @classmethod
    def _envs(cls, v: Dict[str, str]) -> Dict[str, str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"envs: {bad} are not environment variable names (letters, digits, _)")
        return v

    @model_validator(mode="after")
    def _placement(self) -> "SkyPilot":
        if self.on_host and self.image_id:
            raise ValueError("on_host=True runs without an image: drop image_id, or drop on_host to use it")
        return self

    @model_validator(mode="after")
    def _skypilot_schema(self) -> "SkyPilot":
        sky_api.check_task_yaml(self.to_task_yaml())  # SkyPilot's own task-YAML schema, offline
        return self

    def to_task_yaml(self) -> Dict[str, Any]:
        """This config as a SkyPilot task YAML dict (no `run`: the connector supplies the task's command)."""
        resources = {k: getattr(self, k) for k in RESOURCE_FIELDS if getattr(self, k) is not None}
        task: Dict[str, Any] = {"num_nodes": self.num_nodes}
        if resources:
            task["resources"] = resources
        if self.envs:
            task["envs"] = dict(self.envs)
        if self.setup:
            task["setup"] = self.setup
        return task

    def to_custom(self) -> Dict[str, Any]:
        """The task template's `custom`: the SkyPilot task YAML, how the command runs, the pool to launch on."""
        return {"task": self.to_task_yaml(), "on_host": self.on_host, "pool": self.pool}
