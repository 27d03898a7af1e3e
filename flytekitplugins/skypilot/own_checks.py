"""The plugin's own checks of what a task declares, used where SkyPilot is not installed (a job's image, which
needs only `pip install flytekitplugins-skypilot`): coarser than SkyPilot's parsers and schema, which
sky_api uses wherever `sky` is importable, but they refuse the plainly wrong, naming what to write instead."""

import re
from typing import Any, Dict

# A SkyPilot cluster / pool name: a letter first, then letters, digits, "-", "_" or ".", not ending in one of those.
_NAME = re.compile(r"^[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$")
# `infra`: "<cloud>[/<region>[/<zone>]]", "k8s/<context>", "slurm/<cluster>" (a context may contain "/").
_INFRA_CLOUD = re.compile(r"^(\*|[a-zA-Z][a-zA-Z0-9-]*)$")


def check_infra(infra: str) -> None:
    """Raises ValueError when `infra` is not "<cloud>[/<region>[/<zone>]]" in form."""
    parts = infra.strip().split("/")
    if not infra.strip() or any(c.isspace() for c in infra) or not _INFRA_CLOUD.match(parts[0]):
        raise ValueError("not <cloud>[/<region>[/<zone>]]")
    if any(not part for part in parts[1:]):
        raise ValueError("an empty part between slashes")


def check_pool_name(name: str) -> None:
    """Raises ValueError when `name` is not a name SkyPilot accepts for a pool or cluster."""
    if not _NAME.match(name):
        raise ValueError(
            f'"{name}" is not a valid name: start with a letter, then letters, digits, "-", "_" or "." '
            "(not ending in one of those)"
        )


def check_task_yaml(config: Dict[str, Any]) -> None:
    """Raises ValueError when a task YAML's sections have the wrong shape."""
    if not isinstance(config, dict):
        raise ValueError(f"a SkyPilot task YAML is a mapping, not {type(config).__name__}")
    for key in ("resources", "envs", "secrets", "file_mounts", "config"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise ValueError(f"`{key}:` must be a mapping, not {type(config[key]).__name__}")
    num_nodes = config.get("num_nodes", 1)
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise ValueError(f"num_nodes={num_nodes!r}: use a whole number of nodes, 1 or more")
