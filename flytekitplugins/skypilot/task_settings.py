"""Flyte's own task settings (requests / limits, accelerator, interruptible, secret_requests, ...) on a SkyPilot task:
each becomes the SkyPilot field it means, or is refused at declaration with the fix. Nothing is dropped silently."""

import math
import re
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from flytekit.core.resources import Resources, ResourceSpec
from flytekit.extras.accelerators import BaseAccelerator
from flytekit.models.security import Secret

from . import sky_api, translate

# flytekit's accelerator device names -> SkyPilot's accelerator names (SkyPilot's catalog spelling)
GPU_NAMES = {
    "nvidia-a10g": "A10G",
    "nvidia-l4": "L4",
    "nvidia-l4-vws": "L4",
    "nvidia-l40s": "L40S",
    "nvidia-tesla-k80": "K80",
    "nvidia-tesla-m60": "M60",
    "nvidia-tesla-p4": "P4",
    "nvidia-tesla-p100": "P100",
    "nvidia-tesla-t4": "T4",
    "nvidia-tesla-v100": "V100",
    "nvidia-h100": "H100",
    "nvidia-h200": "H200",
    "nvidia-tesla-a100": "A100",
    "nvidia-a100-80gb": "A100-80GB",
}
SECRETS_ENV_PREFIX = "_FSEC_"  # where flytekit's current_context().secrets looks first (env var _FSEC_<GROUP>_<KEY>)
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?|[kmu]|e\d+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_GIB = 2**30


class Refused(ValueError):
    """A Flyte task setting a SkyPilot task cannot honour; the message names it and the fix."""


def quantity(value: Any, field: str) -> Decimal:
    """A Kubernetes-style quantity ("500m", "32Gi", "1G", 4) as a number (bytes for sizes, cores for cpu)."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise Refused(f'{field}={value!r} is not a Kubernetes quantity (e.g. "4", "500m", "32Gi")')
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix == "m":
        return number / 1000
    if suffix.startswith("e"):
        return number * Decimal(10) ** int(suffix[1:])
    return number


def _one(spec: ResourceSpec, name: str) -> Optional[Any]:
    """The value a task asks for: its request (or its limit alone); refused when the limit says otherwise."""
    request, limit = getattr(spec.requests, name), getattr(spec.limits, name)
    if request is not None and limit is not None and str(request) != str(limit):
        raise Refused(
            f"requests {name}={request!r} with limits {name}={limit!r}: a SkyPilot job gets whole machines and "
            f"cannot be capped below what it gets; give one value (requests=Resources({name}=...))"
        )
    return request if request is not None else limit


def _gib(size: Decimal) -> str:
    """A size in SkyPilot's memory unit (GiB), rounded up to a hundredth."""
    value = math.ceil(size / _GIB * 100) / 100
    return f"{value:g}"


def accelerator_name(accelerator: BaseAccelerator) -> str:
    """SkyPilot's name for a flytekit accelerator; refused for partitions and names SkyPilot does not know."""
    idl = accelerator.to_flyte_idl()
    if idl.partition_size:
        raise Refused(
            f"accelerator={idl.device}, partition {idl.partition_size}: SkyPilot allocates whole accelerators; "
            "drop the partition (e.g. accelerator=A100)"
        )
    if idl.device not in GPU_NAMES:
        raise Refused(
            f"accelerator {idl.device!r} has no SkyPilot name known to this plugin: name it in SkyPilot's terms "
            'instead, e.g. SkyPilot(accelerators="H100:8") (for TPUs, "tpu-v5litepod-8")'
        )
    return GPU_NAMES[idl.device]


def resource_fields(spec: ResourceSpec, accelerator: Optional[BaseAccelerator]) -> Dict[str, Any]:
    """The SkyPilot resources that `requests` / `limits` / `accelerator` ask for."""
    fields: Dict[str, Any] = {}
    cpu, mem, gpu, disk = (_one(spec, name) for name in ("cpu", "mem", "gpu", "ephemeral_storage"))
    if cpu is not None:
        fields["cpus"] = f"{quantity(cpu, 'cpu').normalize():f}+"
    if mem is not None:
        fields["memory"] = f"{_gib(quantity(mem, 'mem'))}+"
    if disk is not None:
        fields["disk_size"] = max(1, math.ceil(quantity(disk, "ephemeral_storage") / _GIB))
    count = int(quantity(gpu, "gpu")) if gpu is not None else None
    if count is not None and accelerator is None and count > 0:
        raise Refused(
            f"requests gpu={gpu!r} needs a GPU type: add accelerator= (e.g. flytekit.extras.accelerators.A100) or "
            f'use SkyPilot(accelerators="A100:{count}")'
        )
    if accelerator is not None and count != 0:
        fields["accelerators"] = f"{accelerator_name(accelerator)}:{count or 1}"
    return fields


def secret_env(secret: Secret) -> Tuple[str, str]:
    """(the connector's name for a Flyte secret request, the variable flytekit reads it from in the job)."""
    parts = [p.upper() for p in (secret.group, secret.group_version, secret.key) if p]
    if not parts:
        raise Refused(
            "secret_requests: a Secret needs a group (and usually a key), e.g. Secret(group='hf', key='token')"
        )
    name = "_".join(parts)
    return name, f"{SECRETS_ENV_PREFIX}{name}"


def merged(config_fields: Dict[str, Any], flyte_fields: Dict[str, Any]) -> Dict[str, Any]:
    """SkyPilot(...)'s fields with those Flyte's settings ask for; refused where both set one differently."""
    both = sorted(
        k for k in flyte_fields if config_fields.get(k) not in (None, {}, []) and config_fields[k] != flyte_fields[k]
    )
    if both:
        said = ", ".join(f"{k}: SkyPilot {config_fields[k]!r} vs Flyte {flyte_fields[k]!r}" for k in both)
        raise Refused(f"the task's Flyte settings and SkyPilot(...) both set {said}: keep one of them")
    return {**config_fields, **flyte_fields}


def refuse_unsupported(pod_template: Any, pod_template_name: Optional[str], shared_memory: Any) -> None:
    if pod_template is not None or pod_template_name:
        raise Refused(
            "pod_template / pod_template_name: a SkyPilot task runs the task's container command on SkyPilot's "
            "infra, not a Kubernetes pod; put Kubernetes pod settings in SkyPilot(config={'kubernetes': "
            "{'pod_config': ...}}) and drop pod_template"
        )
    if shared_memory:
        raise Refused(
            "shared_memory: SkyPilot sizes /dev/shm itself (on Kubernetes through "
            "SkyPilot(config={'kubernetes': {'pod_config': ...}})); drop shared_memory"
        )


def requested(resources: Resources) -> bool:
    return any(getattr(resources, name) is not None for name in ("cpu", "mem", "gpu", "ephemeral_storage"))


def with_flyte_settings(task: Any) -> Tuple[Any, Dict[str, str]]:
    """The task's SkyPilot config with its Flyte settings folded in, and its secret requests as
    {connector secret name: the variable the job reads}."""
    refuse_unsupported(task.pod_template, task.metadata.pod_template_name, task.shared_memory)
    config = task.task_config
    if config.on_host and task.container_image is not None:
        raise Refused(
            "container_image with SkyPilot(on_host=True): the command runs on the hosts, not in an image; "
            "drop container_image, or drop on_host to run in it"
        )
    fields = resource_fields(task.resources, task.accelerator)
    if task.metadata.interruptible:
        fields["use_spot"] = True  # Flyte's "may be preempted" is SkyPilot's spot capacity
    secrets = dict(secret_env(s) for s in ((task.security_context and task.security_context.secrets) or []))
    translate.refuse_connector_credentials(list(secrets))
    if fields:
        config = type(config)(**merged(config.model_dump(exclude_defaults=True), fields))
    return config, secrets


# What a SkyPilotYamlTask takes besides its own arguments: Flyte's task metadata (honoured by Flyte itself), and
# what PythonTask reads. Anything else is refused by name.
YAML_TASK_METADATA = (
    "retries",
    "timeout",
    "interruptible",
    "cache",
    "cache_serialize",
    "cache_version",
    "cache_ignore_input_vars",
    "deprecated",
)
_PYTHON_TASK_KWARGS = ("metadata", "docs", "enable_deck", "disable_deck", "deck_fields")


def fold_into_yaml(sky_task: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, str]:
    """Folds Flyte's settings given to a YAML task (requests / limits / accelerator, interruptible,
    container_image, environment, secret_requests) into its SkyPilot YAML, refusing conflicts and unknown
    settings; takes them out of `kwargs` and returns its secret requests as {connector name: job variable}."""
    spec = ResourceSpec(
        requests=kwargs.pop("requests", None) or Resources(), limits=kwargs.pop("limits", None) or Resources()
    )
    fields = resource_fields(spec, kwargs.pop("accelerator", None))
    if kwargs.get("interruptible"):
        fields["use_spot"] = True
    image = kwargs.pop("container_image", None)
    if image is not None:
        fields["image_id"] = f"docker:{image if isinstance(image, str) else image.image_name()}"
    if fields:
        sky_task["resources"] = merged(dict(sky_task.get("resources") or {}), fields)
        sky_api.check_task_yaml(sky_task)  # what Flyte's settings became, against SkyPilot's own schema
    environment = kwargs.pop("environment", None) or {}
    clash = sorted(k for k, v in environment.items() if k in sky_task["envs"] and sky_task["envs"][k] != v)
    if clash:
        raise Refused(f"environment sets {clash}, which the YAML's envs set otherwise: keep one of them")
    sky_task["envs"] = {**environment, **sky_task["envs"]}
    secrets = dict(secret_env(s) for s in (kwargs.pop("secret_requests", None) or []))
    translate.refuse_connector_credentials(list(secrets))
    unknown = sorted(k for k in kwargs if k not in YAML_TASK_METADATA + _PYTHON_TASK_KWARGS)
    if unknown:
        raise Refused(
            f"SkyPilotYamlTask does not take {unknown}: the YAML says how the job runs "
            "(put resources, setup and envs in it)"
        )
    return secrets
