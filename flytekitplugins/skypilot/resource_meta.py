"""The resource meta propeller keeps for a task between create, get and delete (its JSON form must stay readable
by later releases: fields are only ever added, with defaults)."""

from dataclasses import dataclass, field
from typing import Dict, List

from flytekit.extend.backend.base_connector import ResourceMeta


@dataclass
class SkyPilotMetadata(ResourceMeta):
    """Everything get / delete need; stored by propeller, so small and free of secrets."""

    job_name: str  # deterministic: from the task execution id (the output prefix in local runs)
    request_id: str  # the launch request ("" while a cluster_name task waits for its pool); get() resolves it
    output_prefix: str  # where pyflyte-execute writes outputs.pb / error.pb
    endpoint: str  # the SkyPilot API server the job was submitted to
    num_nodes: int = 1  # nodes other than the head write error.pb under <output_prefix>/node-<rank>
    outputs: Dict[str, str] = field(default_factory=dict)  # a YAML task's output names and kinds (see yaml_io)
    cluster_name: str = ""  # the pool of a cluster_name task (see pools)
    secrets: List[str] = field(default_factory=list)  # the names (never values) of the task's secrets
    batch_rank: int = -1  # a fan-out subtask's SKYPILOT_JOB_RANK in its batch (job_name is the batch's; see batches)
