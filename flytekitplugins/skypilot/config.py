"""`SkyPilot`: what a task declares, validated at declaration, kept in SkyPilot's task-YAML vocabulary."""

import copy
import difflib
import os
import re
from typing import Any, Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import sky_api

# SkyPilot's own form for cpus / memory: a number, optionally followed by "+" (at least);
# memory may carry a unit ("32GB", "1TB+").
_CPUS = re.compile(r"^\d+(\.\d+)?\+?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGT]B?)?\+?$", re.IGNORECASE)
_ACCELERATOR = re.compile(r"^[A-Za-z0-9][\w.\-]*(:\d+(\.\d+)?)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The fields that go under `resources:` in a SkyPilot task YAML, in SkyPilot's own names.
RESOURCE_FIELDS = (
    "infra",
    "cloud",
    "region",
    "zone",
    "instance_type",
    "cpus",
    "memory",
    "accelerators",
    "accelerator_args",
    "use_spot",
    "job_recovery",
    "disk_size",
    "disk_tier",
    "network_tier",
    "image_id",
    "ports",
    "labels",
    "max_hourly_cost",
    "priority",
    "priority_class",
    "any_of",
    "ordered",
)
_BUCKET_SCHEMES = ("s3://", "gs://", "r2://", "cos://", "oci://", "https://", "az://", "nebius://")


class SkyPilot(BaseModel):
    """How a Flyte task runs as a SkyPilot managed job.

    Field names and values are those of SkyPilot's task YAML (`resources:`, `num_nodes`, `envs`, `setup`)
    and of `sky jobs launch` (`pool`). By default the job runs the task's container image
    (`image_id="docker:<task image>"`); set `on_host=True` for clusters without a container runtime (e.g. Slurm
    without Pyxis): the task's command then runs directly on the hosts, which must provide flytekit and the task's code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    infra: Optional[str] = Field(
        None, description='Where to run: "aws", "aws/us-east-1", "k8s/<context>", "slurm/<cluster>"'
    )
    cpus: Union[int, float, str, None] = Field(None, description='vCPUs per node: 4, "4+" (at least 4)')
    memory: Union[int, float, str, None] = Field(None, description='GB per node: 16, "16+", "32GB"')
    accelerators: Union[str, Dict[str, Union[int, float]], List[str], None] = Field(
        None, description='"H100:8", {"H100": 8}, or a list of candidates ["H100:8", "A100-80GB:8"]'
    )
    accelerator_args: Optional[Dict[str, Any]] = Field(None, description='e.g. {"runtime_version": "tpu-vm-base"}')
    cloud: Optional[str] = Field(None, description="Alternative to infra (with region / zone); not both")
    region: Optional[str] = None
    zone: Optional[str] = None
    instance_type: Optional[str] = None
    disk_size: Optional[int] = Field(None, gt=0, description="OS disk size in GB")
    disk_tier: Optional[Literal["low", "medium", "high", "ultra", "best"]] = None
    network_tier: Optional[Literal["standard", "best"]] = None
    use_spot: Optional[bool] = None
    job_recovery: Union[str, Dict[str, Any], None] = Field(
        None,
        description='"FAILOVER", "EAGER_NEXT_REGION", or {"strategy": ..., "max_restarts_on_errors": 3, '
        '"recover_on_exit_codes": [33]}',
    )
    image_id: Optional[str] = Field(None, description='Overrides the image: "docker:<image>" or a VM image id')
    ports: Union[int, str, List[Union[int, str]], None] = None
    labels: Dict[str, str] = Field(default_factory=dict, description="Instance / pod labels")
    max_hourly_cost: Optional[float] = Field(None, gt=0, description="Upper bound in $/hour for the whole job")
    priority: Optional[int] = Field(None, ge=-1000, le=1000, description="Order in SkyPilot's managed-jobs queue")
    priority_class: Optional[str] = Field(None, description="Kubernetes PriorityClass of the job's pods")
    kueue_local_queue: Optional[str] = Field(None, description="Kueue LocalQueue the job's pods are queued in")
    any_of: Optional[List[Dict[str, Any]]] = Field(None, description="Resource candidates, any order")
    ordered: Optional[List[Dict[str, Any]]] = Field(None, description="Resource candidates, in preference order")
    on_host: bool = Field(False, description="Run the command on the hosts directly instead of in the task image")
    num_nodes: int = Field(1, ge=1)
    envs: Dict[str, str] = Field(default_factory=dict)
    secrets: List[str] = Field(
        default_factory=list,
        description="Names of the connector's secrets to hand to the job as environment variables (never values)",
    )
    setup: Optional[str] = None
    file_mounts: Dict[str, Union[str, Dict[str, Any]]] = Field(
        default_factory=dict, description='{"/data": "s3://bucket"} or {"/data": {"source": ..., "mode": "MOUNT"}}'
    )
    config: Dict[str, Any] = Field(default_factory=dict, description="SkyPilot per-task config overrides")
    pool: Optional[str] = Field(None, description="Name of an existing SkyPilot pool to run on")
    cluster_name: Optional[str] = Field(
        None,
        description="Tasks naming one cluster run on one warm SkyPilot pool of that name, created from the "
        "first such task's resources if missing and never torn down by the plugin (`sky jobs pool down <name>`)",
    )

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: Any) -> Any:
        if v is not None and not _CPUS.match(str(v)):
            raise ValueError(f'cpus={v!r} is not a count: use a number such as 4 or "4+" (at least 4)')
        if v is not None and _amount(v) <= 0:
            raise ValueError(f'cpus={v!r}: a node needs more than 0 vCPUs: use e.g. 4 or "4+", or leave cpus out')
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        if v is not None and not _MEMORY.match(str(v)):
            raise ValueError(f'memory={v!r} is not a size: use GB such as 16, "16+" or "32GB"')
        if v is not None and _amount(v) <= 0:
            raise ValueError(f'memory={v!r}: a node needs more than 0 memory: use e.g. 16 or "16+", or leave it out')
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
            raise ValueError(f'infra={v!r}: {e} (e.g. "aws/us-east-1", "k8s/my-context", "slurm/mycluster")') from None
        return v

    @field_validator("pool", "cluster_name")
    @classmethod
    def _pool_name(cls, v: Optional[str], info) -> Optional[str]:
        if v is not None:
            try:
                sky_api.check_pool_name(v)
            except ValueError as e:
                raise ValueError(f"{info.field_name}={v!r}: {e}") from None
        return v

    @field_validator("envs")
    @classmethod
    def _envs(cls, v: Dict[str, str]) -> Dict[str, str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"envs: {bad} are not environment variable names (letters, digits, _)")
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: List[str]) -> List[str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(
                f"secrets: {bad} are not names: list the names of the connector's secrets (e.g. "
                '["HF_TOKEN"]); their values are looked up by the connector and never written into the task'
            )
        from .translate import refuse_connector_credentials

        refuse_connector_credentials(v)
        return v

    @field_validator("file_mounts")
    @classmethod
    def _file_mounts(cls, v: Dict[str, Any]) -> Dict[str, Any]:
        for dst, src in v.items():
            source = src.get("source") if isinstance(src, dict) else src
            _file_mount_paths(dst, source)
            mode = str(src.get("mode", "MOUNT")).upper() if isinstance(src, dict) else "COPY"
            if isinstance(source, str) and mode.startswith("MOUNT") and _bucket_sub_path(source):
                bucket = source[: len(source) - len(_bucket_sub_path(source)) - 1]
                raise ValueError(
                    f"file_mounts[{dst!r}]: SkyPilot cannot {mode} a bucket sub-path ({source}): mount the "
                    f"bucket ({bucket}) and use {_bucket_sub_path(source)} inside it"
                )
        return v

    @model_validator(mode="before")
    @classmethod
    def _did_you_mean(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                hints = [
                    f"{k!r}"
                    + (
                        f" (did you mean {m[0]!r}?)"
                        if (m := difflib.get_close_matches(k, list(cls.model_fields), 1))
                        else ""
                    )
                    for k in unknown
                ]
                raise ValueError(f"SkyPilot(...) has no field {', '.join(hints)}")
        return data

    @model_validator(mode="after")
    def _placement(self) -> "SkyPilot":
        if self.on_host and self.image_id:
            raise ValueError("on_host=True runs without an image: drop image_id, or drop on_host to use it")
        if self.infra and (self.cloud or self.region or self.zone):
            raise ValueError(
                f"infra={self.infra!r} and cloud/region/zone both say where to run: use infra alone "
                '(e.g. "aws/us-east-1/us-east-1a") or cloud/region/zone alone'
            )
        if self.pool and self.cluster_name:
            raise ValueError(
                f"pool={self.pool!r} and cluster_name={self.cluster_name!r} both say where to run: pool runs on an "
                "existing pool, cluster_name on one created on first use; use one of them"
            )
        if self.any_of and self.ordered:
            raise ValueError("any_of and ordered are two kinds of fallback: use one of them")
        return self

    @model_validator(mode="after")
    def _skypilot_schema(self) -> "SkyPilot":
        sky_api.check_task_yaml(self.to_task_yaml())  # SkyPilot's own task-YAML schema, offline
        return self

    @classmethod
    def from_yaml(cls, source: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> "SkyPilot":
        """The config of an existing SkyPilot task YAML (a path or a dict): the same job, run by a Flyte task."""
        task = read_task_yaml(source)
        for key, why in _NOT_FOR_A_FLYTE_TASK.items():
            if task.get(key) is not None:
                raise ValueError(f"`{key}:` cannot be part of a Flyte task's SkyPilot config: {why}")
        resources = dict(task.get("resources") or {})
        unsupported = sorted(set(resources) - set(RESOURCE_FIELDS))
        if unsupported:
            raise ValueError(f"resources: {unsupported} are not supported for a Flyte task's managed job")
        fields = {k: task[k] for k in ("num_nodes", "envs", "setup", "file_mounts", "config") if task.get(k)}
        return cls(**resources, **fields, secrets=secret_names(task))

    def to_task_yaml(self) -> Dict[str, Any]:
        """This config as a SkyPilot task YAML dict (no `run`: the connector supplies the task's command;
        no secret values: the connector adds `secrets:` from the names in `to_custom()`)."""
        resources = {k: getattr(self, k) for k in RESOURCE_FIELDS if getattr(self, k) not in (None, {}, [])}
        task: Dict[str, Any] = {"num_nodes": self.num_nodes}
        for key, value in (
            ("resources", resources),
            ("envs", dict(self.envs)),
            ("setup", self.setup),
            ("file_mounts", dict(self.file_mounts)),
            ("config", self._task_config()),
        ):
            if value:
                task[key] = value
        return task

    def _task_config(self) -> Dict[str, Any]:
        """`config:` with the Kueue queue folded in where SkyPilot reads it."""
        config = copy.deepcopy(self.config)
        if self.kueue_local_queue:
            kueue = config.setdefault("kubernetes", {}).setdefault("kueue", {})
            kueue["local_queue_name"] = self.kueue_local_queue
        return config

    def to_custom(self) -> Dict[str, Any]:
        """The task template's `custom`: the SkyPilot task YAML, how the command runs, the pool to launch on."""
        return {
            "task": self.to_task_yaml(),
            "on_host": self.on_host,
            "pool": self.pool,
            "cluster_name": self.cluster_name,
            "secrets": list(self.secrets),
        }


_NOT_FOR_A_FLYTE_TASK = {
    "run": "the Flyte task's own command runs in the job (to run a YAML's `run` unchanged, use a YAML task)",
    "workdir": "the task's code reaches the job in its image or through Flyte's code upload",
    "service": "a SkyServe service is not a Flyte task",
    "pool": "a pool spec creates a pool; pass pool=<name> to run on an existing one",
}


def read_task_yaml(source: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> Dict[str, Any]:
    """A SkyPilot task YAML (a path or a dict, never modified) checked against SkyPilot's own schema, with its
    did-you-mean for unknown keys."""
    if isinstance(source, dict):
        task = copy.deepcopy(source)
    else:
        with open(source) as f:
            task = yaml.safe_load(f) or {}
    return sky_api.check_task_yaml(task)


def secret_names(task: Dict[str, Any]) -> List[str]:
    """The names under a SkyPilot task YAML's `secrets:`, which must carry no values in a Flyte task."""
    secrets = task.get("secrets") or {}
    if any(v is not None for v in secrets.values()):
        raise ValueError(
            f"secrets: {sorted(secrets)} carry values; a Flyte task passes secrets by name only: keep the names "
            "(with empty values, e.g. `HF_TOKEN:`) and give the values to the connector"
        )
    return sorted(secrets)


def _bucket_sub_path(source: str) -> str:
    """The path inside the bucket of a cloud-storage URL ("" for the bucket itself)."""
    for scheme in _BUCKET_SCHEMES:
        if source.startswith(scheme) and scheme != "https://":
            parts = source[len(scheme) :].strip("/").split("/", 1)
            return parts[1] if len(parts) > 1 else ""
    return ""


def _amount(value: Any) -> float:
    """The number in a cpus / memory value already in SkyPilot's form ("4+", "32GB", 16)."""
    return float(re.match(r"\d+(\.\d+)?", str(value)).group(0))


_REFERENCE = re.compile(r"\$\{?[A-Za-z_]")


def _file_mount_paths(dst: str, source: Any) -> None:
    """A file mount's paths hold no variable (SkyPilot substitutes secrets into them and may quote the result)
    and its source is no local path (it would be read on the connector's filesystem, not the author's)."""
    for where, path in (("destination", dst), ("source", source)):
        if isinstance(path, str) and _REFERENCE.search(path):
            raise ValueError(
                f"file_mounts[{dst!r}]: the {where} {path!r} refers to a variable: write the path out (a secret "
                "in a path would be substituted into it and shown wherever the path is)"
            )
    if isinstance(source, str) and "://" not in source:
        raise ValueError(
            f"file_mounts[{dst!r}]: {source!r} is a local path, which the connector would read on its own "
            "filesystem: upload it to a bucket and mount its URL (s3://, gs://, ...), or put it in the image"
        )
