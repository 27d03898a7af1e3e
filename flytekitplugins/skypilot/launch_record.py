"""A task attempt's launch, recorded in the attempt's own output prefix, so that a repeated CreateTask launches
nothing new: also when it reaches a connector process that has restarted since the first one.

The record is written before the launch (its intent) and again with the launch request id once SkyPilot gave
one. A record still without a request id means the connector stopped in between: SkyPilot itself is then
asked whether a launch request or a managed job of that name exists. It also holds what any connector process
needs to launch the attempt again after an infra failure (its `plan`: the task YAML with secret names, never
values) and the relaunches made so far.
"""

import json
import time
from typing import Any, Optional

from flytekit import FlyteContextManager

RECORD = "skypilot-launch.json"


def read(output_prefix: str, job_name: str) -> Optional[dict]:
    """The record of this job's launch ({"job_name", "request_id"}, and "batch" and "rank" for a subtask
    launched in a batch), or None if the attempt never launched."""
    path = _path(output_prefix)
    fs = FlyteContextManager.current_context().file_access.get_filesystem_for_path(path)
    try:
        record = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("job_name") == job_name else None


def write(
    output_prefix: str,
    job_name: str,
    request_id: Optional[str],
    batch: Optional[str] = None,
    rank: Optional[int] = None,
    **state: Any,
) -> None:
    """`state`: an attempt's relaunch state (plan, relaunches, why, spent_jobs, spent_requests), kept as given."""
    path = _path(output_prefix)
    fs = FlyteContextManager.current_context().file_access.get_filesystem_for_path(path)
    record = {"job_name": job_name, "request_id": request_id}
    if batch is not None:
        record.update(batch=batch, rank=rank)
    if state:
        record.update(state, at=time.time())  # `at`: when the intent was written (see LaunchOnce)
    fs.pipe_file(path, json.dumps(record).encode())


def _path(output_prefix: str) -> str:
    return f"{output_prefix.rstrip('/')}/{RECORD}"
