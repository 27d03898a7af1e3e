"""`SkyPilot`: what a task declares, validated at declaration, kept in SkyPilot's task-YAML vocabulary."""

import copy
import difflib
import os
import re
from typing import Any, Dict, List, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import sky_api

# SkyPilot's own forms for sizes: a number of GB, or a number with one of its units ("32GB", "512Mi").
_SIZE_UNITS = ("kb", "ki", "mb", "mi", "gb", "gi", "tb", "ti", "pb", "pi")
_DISK_TIERS = ("low", "medium", "high", "ultra", "best")
_NETWORK_TIERS = ("standard", "best")
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
    accelerators: Union[str, Dict[str, Union[int, float, None]], List[str], None] = Field(
        None,
        description='"H100:8", {"H100": 8}, candidates in order ["H100:8", "A100-80GB:8"] or in any order '
        '{"L4", "A10G"} (SkyPilot\'s YAML set: {"L4": None, "A10G": None})',
    )
    accelerator_args: Optional[Dict[str, Any]] = Field(None, description='e.g. {"runtime_version": "tpu-vm-base"}')
    cloud: Optional[str] = Field(None, description="Alternative to infra (with region / zone); not both")
    region: Optional[str] = None
    zone: Optional[str] = None
    instance_type: Optional[str] = None
    disk_size: Union[int, str, None] = Field(None, description='OS disk size: GB (256) or with a unit ("1TB")')
    disk_tier: Optional[str] = Field(None, description="low, medium, high, ultra or best")
    network_tier: Optional[str] = Field(None, description="standard or best")
    use_spot: Optional[bool] = None
    job_recovery: Union[str, Dict[str, Any], None] = Field(
        None,
        description='"FAILOVER", "EAGER_NEXT_REGION", or {"strategy": ..., "max_restarts_on_errors": 3, '
        '"recover_on_exit_codes": [33]}',
    )
    image_id: Union[str, Dict[str, str], None] = Field(
        None, description='Overrides the image: "docker:<image>", a VM image id, or {"<region>": "<image id>"}'
    )
    ports: Union[int, str, List[Union[int, str]], None] = None
    labels: Dict[str, str] = Field(default_factory=dict, description="Instance / pod labels")
    max_hourly_cost: Optional[float] = Field(
        None, gt=0, allow_inf_nan=False, description="Upper bound in $/hour for the whole job"
    )
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
        if v is not None and _positive(str(v).removesuffix("+")) is None:
            raise ValueError(f'cpus={v!r} is not a count of more than 0 vCPUs: use e.g. 4 or "4+" (at least 4)')
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        if v is not None and _size(str(v).removesuffix("+")) is None:
            raise ValueError(
                f'memory={v!r} is not a positive size: use GB such as 16, "16+", or a unit of KB/MB/GB/TB/PB '
                '(or KiB-style Ki/Mi/Gi/Ti/Pi) such as "32GB"'
            )
        return v

    @field_validator("disk_size")
    @classmethod
    def _disk_size(cls, v: Any) -> Any:
        size = None if v is None else _size(str(v))
        if v is not None and (size is None or size != int(size) or int(size) <= 0):
            raise ValueError(f'disk_size={v!r} is not a positive whole size: use GB such as 256, or "1TB"')
        return v

    @field_validator("disk_tier", "network_tier")
    @classmethod
    def _tier(cls, v: Optional[str], info) -> Optional[str]:
        tiers = _DISK_TIERS if info.field_name == "disk_tier" else _NETWORK_TIERS
        if v is not None and v.lower() not in tiers:
            names = ", ".join(repr(t) for t in tiers[:-1]) + f" or {tiers[-1]!r}"
            raise ValueError(f"{info.field_name}={v!r}: use one of {names}")
        return v

    @field_validator("accelerators", mode="before")
    @classmethod
    def _accelerator_set(cls, v: Any) -> Any:
        """A Python set of candidates as SkyPilot's YAML writes one: a mapping, counts None where not given."""
        if isinstance(v, (set, frozenset)):
            return {_accelerator_count(i)[0]: _accelerator_count(i)[1] if ":" in str(i) else None for i in v}
        return v

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, v: Any) -> Any:
        if isinstance(v, dict):
            counts = [(name, 1 if count is None else count) for name, count in v.items()]
        else:
            items = [v] if isinstance(v, str) else list(v) if v is not None else []
            counts = [_accelerator_count(item) for item in items]
        for name, count in counts:
            if not name or isinstance(count, bool) or _positive(str(count)) is None:
                raise ValueError(
                    f'accelerators={v!r}: {name or v!r} is not "<name>[:<count>]" with a positive count, '
                    'e.g. "H100:8" or {"H100": 8}'
                )
        return v

    @field_validator("envs", mode="before")
    @classmethod
    def _envs_as_text(cls, v: Any) -> Any:
        """Numbers and booleans as values are written as text, as SkyPilot reads a task YAML's `envs:`."""
        if isinstance(v, dict):
            return {k: str(x) if isinstance(x, (int, float)) else x for k, x in v.items()}
        return v

    @field_validator("config")
    @classmethod
    def _config(cls, v: Dict[str, Any]) -> Dict[str, Any]:
        try:
            sky_api.check_task_yaml({"config": v})
        except ValueError as e:
            raise ValueError(f"config: {e}") from None
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
        sky_api.check_task(self.to_task_yaml())  # SkyPilot's own task validation, offline
        return self

    @classmethod
    def from_yaml(cls, source: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> "SkyPilot":
        """The config of an existing SkyPilot task YAML (a path or a dict): the same job, run by a Flyte task."""
        task = read_task_yaml(source)
        for key in task:
            if key not in _TASK_KEYS:
                why = _NOT_FOR_A_FLYTE_TASK.get(key, "the plugin does not pass it on to the managed job")
                raise ValueError(f"`{key}:` cannot be part of a Flyte task's SkyPilot config: {why}")
        resources = task.get("resources") or {}
        if not isinstance(resources, dict):
            raise ValueError(f"`resources:` must be a mapping of SkyPilot resource fields, not {resources!r}")
        unsupported = sorted(set(resources) - set(RESOURCE_FIELDS))
        if unsupported:
            raise ValueError(
                f"resources: {unsupported} are not supported for a Flyte task's managed job "
                f"(supported: {', '.join(RESOURCE_FIELDS)}): remove them"
            )
        fields = {
            k: task[k] for k in ("num_nodes", "envs", "setup", "file_mounts", "config") if task.get(k) is not None
        }
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


# The task-YAML keys a Flyte task's config carries over (`name:` too: the job is named after the Flyte execution).
_TASK_KEYS = ("name", "resources", "num_nodes", "envs", "secrets", "setup", "file_mounts", "config")
_NOT_FOR_A_FLYTE_TASK = {
    "run": "the Flyte task's own command runs in the job (to run a YAML's `run` unchanged, use a YAML task)",
    "workdir": "the task's code reaches the job in its image or through Flyte's code upload",
    "service": "a SkyServe service is not a Flyte task",
    "pool": "a pool spec creates a pool; pass pool=<name> to run on an existing one",
    "volumes": "the plugin attaches no SkyPilot volumes: mount a bucket through file_mounts instead",
    "volume_mounts": "the plugin attaches no SkyPilot volumes: mount a bucket through file_mounts instead",
    "event_callback": "the connector follows the job itself; run a callback in the Flyte workflow instead",
    "inputs": "the Flyte task's inputs reach the job through Flyte",
    "outputs": "the Flyte task's outputs leave the job through Flyte",
    "file_mounts_mapping": "SkyPilot fills it in itself; declare file_mounts instead",
    "api_server_access": "the connector decides whether jobs may call the SkyPilot API server "
    "(FLYTE_SKYPILOT_API_SERVER_ACCESS on the connector)",
}


def read_task_yaml(source: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> Dict[str, Any]:
    """A SkyPilot task YAML (a path or a dict, never modified) checked against SkyPilot's own schema, with its
    did-you-mean for unknown keys."""
    if isinstance(source, dict):
        task = copy.deepcopy(source)
    elif isinstance(source, (str, os.PathLike)):
        task = _load_yaml(source)
    else:
        raise ValueError(f"from_yaml takes a path or a dict of a SkyPilot task YAML, not {type(source).__name__}")
    return sky_api.check_task_yaml(task)


def _load_yaml(path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """The one YAML document in the file at `path`, which must be a mapping (an empty file is an empty task)."""
    with open(path) as f:
        try:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(e, "problem", None) or type(e).__name__
            raise ValueError(f"{path}: not valid YAML{at} ({problem}): fix the YAML syntax") from None
    if len(documents) > 1:
        raise ValueError(f"{path} holds {len(documents)} YAML documents: a task YAML is one (split it into files)")
    task = documents[0] if documents else {}
    if not isinstance(task, dict):
        raise ValueError(
            f"{path} holds a {type(task).__name__}, not a task: a SkyPilot task YAML is a mapping "
            "(resources:, num_nodes:, envs:, ...)"
        )
    return task


def secret_names(task: Dict[str, Any]) -> List[str]:
    """The names under a SkyPilot task YAML's `secrets:`, which must carry no values in a Flyte task."""
    secrets = task.get("secrets") or {}
    if any(v is not None for v in secrets.values()):
        raise ValueError(
            f"secrets: {sorted(secrets)} carry values; a Flyte task passes secrets by name only: keep the names "
            "(with empty values, e.g. `HF_TOKEN:`) and give the values to the connector"
        )
    return sorted(secrets)


def _positive(text: str) -> Optional[float]:
    """The positive finite number `text` holds, else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 < number < float("inf") else None


def _size(text: str) -> Optional[float]:
    """GB in a size as SkyPilot writes it (a number of GB, or a number and one of its units), else None."""
    lower = text.strip().lower()
    unit = next((u for u in _SIZE_UNITS if lower.endswith(u)), None)
    if unit is None:
        return _positive(lower)
    number = _positive(lower[: -len(unit)])
    scale = 1024.0 ** ("kmgtp".index(unit[0]) - 2)
    return None if number is None else number * scale


def _accelerator_count(item: Any) -> tuple:
    """(name, count) of "<name>[:<count>]"."""
    parts = str(item).split(":")
    if len(parts) > 2:
        return "", None
    return parts[0].strip(), parts[1] if len(parts) == 2 else 1


def _bucket_sub_path(source: str) -> str:
    """The path inside the bucket of a cloud-storage URL ("" for the bucket itself)."""
    for scheme in _BUCKET_SCHEMES:
        if source.startswith(scheme) and scheme != "https://":
            parts = source[len(scheme) :].strip("/").split("/", 1)
            return parts[1] if len(parts) > 1 else ""
    return ""


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
