"""The resource meta propeller keeps for a task between create, get and delete. Its JSON outlives a connector
release (propeller keeps it across upgrades and rollbacks), so decoding it is tolerant of other releases' metas
and strict about broken ones:

- a field this release does not know (written by a later release, read after a rollback) is ignored;
- a field missing or null (written before it existed) takes its default; only `job_name` is required;
- a field of the wrong type is refused with a ValueError naming the field, never coerced (`"0"` is not taken
  for 0: a meta no release wrote is not guessed at).

Fields are only ever added, each with a default, so every earlier release's meta decodes (tests/data/metas).
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List

from flytekit import logger
from flytekit.extend.backend.base_connector import ResourceMeta

REQUIRED = ("job_name",)  # get and delete can do nothing for a task whose job they cannot name


@dataclass
class SkyPilotMetadata(ResourceMeta):
    """Everything get / delete need; stored by propeller, so small and free of secrets."""

    job_name: str  # deterministic: from the task execution id (the output prefix in local runs)
    request_id: str = ""  # the launch request ("" while a cluster_name task waits for its pool); get() resolves it
    output_prefix: str = ""  # where pyflyte-execute writes outputs.pb / error.pb
    endpoint: str = ""  # the SkyPilot API server the job was submitted to
    num_nodes: int = 1  # nodes other than the head write error.pb under <output_prefix>/node-<rank>
    outputs: Dict[str, str] = field(default_factory=dict)  # a YAML task's output names and kinds (see yaml_io)
    cluster_name: str = ""  # the pool of a cluster_name task (see pools)
    secrets: List[str] = field(default_factory=list)  # the names (never values) of the task's secrets
    batch_rank: int = -1  # a fan-out subtask's SKYPILOT_JOB_RANK in its batch (job_name is the batch's; see batches)

    @classmethod
    def decode(cls, data: bytes) -> "SkyPilotMetadata":
        """The meta in `data` (see the module's rules); raises ValueError naming what is wrong."""
        return cls(**checked_fields(cls, parsed(data)))


def parsed(data: bytes) -> Dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"SkyPilot resource meta is not JSON ({e}); it was not written by this connector") from None
    if not isinstance(value, dict):
        raise ValueError(f"SkyPilot resource meta is a JSON {type(value).__name__}, not an object of fields")
    return value


def checked_fields(cls: type, value: Dict[str, Any]) -> Dict[str, Any]:
    """The known, non-null fields of `value`, each of its declared type."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        logger.debug(f"SkyPilot resource meta fields {unknown} are of another connector release: ignored")
    for name in REQUIRED:
        if value.get(name) in (None, ""):
            raise ValueError(
                f"SkyPilot resource meta has no {name!r} (fields: {sorted(value)}); the task's job cannot be "
                "found: abort the execution and run it again"
            )
    return {name: _checked(name, known[name].type, v) for name, v in value.items() if name in known and v is not None}


def _checked(name: str, declared: Any, v: Any) -> Any:
    expected, ok = _SHAPES[declared]
    if not ok(v):
        raise ValueError(
            f"SkyPilot resource meta field {name!r} must be {expected}, not {type(v).__name__} {v!r:.60}; "
            "the meta was not written by a release of this connector: abort the execution and run it again"
        )
    return dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SHAPES = {
    str: ("a string", lambda v: isinstance(v, str)),
    int: ("an integer", _is_int),
    Dict[str, str]: (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    List[str]: ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}
# a field added later is of one of these types (or gets its shape here): decode checks every field it reads
assert all(f.type in _SHAPES for f in dataclasses.fields(SkyPilotMetadata)), "a SkyPilotMetadata field lacks a shape"
