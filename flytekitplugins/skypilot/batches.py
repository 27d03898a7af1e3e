"""Fan-outs launched as one SkyPilot request: the subtasks of a map_task (which propeller sends to the connector
registered for task type version 1) become the jobs of one `sky.jobs.launch(num_jobs=N)`.

Propeller creates the subtasks one after another and each CreateTask must return at once, so a create only
joins the open batch of its kind (same execution, task, retry attempt and SkyPilot task but for the command)
and returns its batch's job name and its rank. A batch launches in the background once no subtask has joined
it for the batch window (FLYTE_SKYPILOT_BATCH_WINDOW, 2 s) or once it is full: one request whose job runs,
by SKYPILOT_JOB_RANK, the command of the subtask with that rank. Each subtask keeps its own inputs, outputs,
job (the rank-th job id of the request), status, log link, cancel and retry (a retry is a new attempt: it
launches with the other retries that arrive together, or alone).

Each member's launch record (see launch_record) names its batch and rank, so a repeated create after a
connector restart finds its job by batch name and rank; a batch that never launched (the connector stopped
within the window) has no jobs, so get reports the subtask retryable and its retry launches it.
"""

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from flytekit import logger
from flytekit.models.task import TaskExecutionMetadata

from . import credentials, launch_record, sky_api, translate
from .background import Worker
from .settings import ConnectorSettings
from .tracker import Tracker

MAX_JOBS = 64  # jobs per request: one SkyPilot request, one run script holding every subtask's command
_TICK_S = 0.2


def batch_key(metadata: Optional[TaskExecutionMetadata], config: Dict[str, Any]) -> Optional[str]:
    """What subtasks that may share a launch have in common, or None for a task that launches alone."""
    if metadata is None or metadata.task_execution_id is None:
        return None  # a local run creates one subtask at a time
    if config.get("num_nodes", 1) > 1:
        return None
    tid = metadata.task_execution_id
    execution = tid.node_execution_id.execution_id
    same = {k: v for k, v in config.items() if k not in ("run", "name")}
    key = [
        execution.project,
        execution.domain,
        execution.name,
        tid.task_id.name,
        tid.task_id.version,
        tid.retry_attempt,
        same,
    ]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rank_dispatch(commands: List[str]) -> str:
    """The `run:` of a batch: each job runs the command of the subtask of its SKYPILOT_JOB_RANK."""
    cases = [f"  {rank}) {command} ;;" for rank, command in enumerate(commands)]
    fallback = '  *) echo "no Flyte subtask for SKYPILOT_JOB_RANK=$SKYPILOT_JOB_RANK" >&2; exit 1 ;;'
    return "\n".join(['case "${SKYPILOT_JOB_RANK:-0}" in', *cases, fallback, "esac"])


@dataclass
class Batch:
    name: str  # the job name every job of the batch has
    config: Dict[str, Any]  # the SkyPilot task YAML, but for `run`
    pool: Optional[str]
    members: List[Tuple[str, str]] = field(default_factory=list)  # (subtask's own name, output prefix) by rank
    commands: List[str] = field(default_factory=list)  # by rank
    last_join: float = 0.0
    closed: bool = False
    request_id: Optional[str] = None  # set once launched
    error: Optional[str] = None  # set when the launch could not be submitted
    abandoned: Set[int] = field(default_factory=set)  # ranks deleted before the launch
    forgotten: Set[int] = field(default_factory=set)  # ranks whose state was dropped (see retention)


class Batches:
    """This connector process's batches, launched in the background as their windows close."""

    def __init__(
        self,
        sky: sky_api.Client,
        tracker: Tracker,
        settings: ConnectorSettings,
        cancel_member: Callable[[Optional[str], str, int], None],
    ) -> None:
        self._sky = sky
        self._tracker = tracker
        self._settings = settings  # read at each tick: the batch window
        self._cancel_member = cancel_member  # for ranks deleted before their batch launched
        self._lock = threading.Lock()
        self._open: Dict[str, Batch] = {}  # batch key -> the batch taking members
        self._by_name: Dict[str, Batch] = {}
        self._launcher = Worker("skypilot-batches", self._launch_closing)

    def key(self, metadata: Optional[TaskExecutionMetadata], config: Dict[str, Any]) -> Optional[str]:
        """The subtask's batch key (see batch_key); None when batching is turned off (a batch window of 0)."""
        return batch_key(metadata, config) if self._settings.batch_window > 0 else None

    def join(
        self, key: str, member: str, output_prefix: str, config: Dict[str, Any], pool: Optional[str]
    ) -> Tuple[str, int]:
        """Adds a subtask to the open batch of its kind; returns (the batch's job name, the subtask's rank)."""
        with self._lock:
            batch = self._open.get(key)
            if batch is None or batch.closed or len(batch.commands) >= MAX_JOBS:
                name = f"{config['name'][:48]}-b{hashlib.sha256(member.encode()).hexdigest()[:6]}"
                batch = self._open[key] = self._by_name[name] = Batch(name, _without_run(config), pool)
            batch.members.append((member, output_prefix))
            batch.commands.append(config["run"])
            batch.last_join = time.monotonic()
            self._launcher.start()
            return batch.name, len(batch.commands) - 1

    def pending(self, name: str) -> Optional[Batch]:
        return self._by_name.get(name)

    def abandon(self, name: str, rank: int) -> Optional[str]:
        """A subtask deleted before its batch launched: its job is cancelled as soon as it exists."""
        with self._lock:
            batch = self._by_name.get(name)
            if batch is None:
                return None
            batch.abandoned.add(rank)
            return batch.request_id

    def forget(self, name: str, rank: int) -> bool:
        """Drops a done subtask's place (see retention); True once its batch went with its last rank."""
        with self._lock:
            batch = self._by_name.get(name)
            if batch is None:
                return False
            batch.forgotten.add(rank)
            if not batch.closed or len(batch.forgotten) < len(batch.members):
                return False
            del self._by_name[name]
            return True

    def held(self) -> Dict[str, int]:
        with self._lock:
            return {"batches.open": len(self._open), "batches.by_name": len(self._by_name)}

    def _launch_closing(self) -> None:
        while True:
            time.sleep(_TICK_S)
            window = self._settings.batch_window
            with self._lock:
                due = [
                    b
                    for b in self._open.values()
                    if not b.closed and (time.monotonic() - b.last_join >= window or len(b.commands) >= MAX_JOBS)
                ]
                for batch in due:
                    batch.closed = True
                if not any(not b.closed for b in self._open.values()):
                    self._open.clear()
                    if not due:
                        self._launcher.stopping()
                        return
            for batch in due:
                self._launch(batch)

    def _launch(self, batch: Batch) -> None:
        try:
            config = {**batch.config, "name": batch.name, "run": rank_dispatch(batch.commands)}
            task = translate.sky_task(credentials.with_storage_access(config, self._settings.storage_access()))
            request_id = self._sky.launch(task, batch.name, batch.pool, num_jobs=len(batch.commands))
        except Exception as e:  # reported by get; every member fails with it (retryable)
            batch.error = f"{type(e).__name__}: {sky_api.clean(e)}"
            logger.warning(f"batch {batch.name} of {len(batch.commands)} subtasks not launched: {batch.error}")
            return
        self._tracker.watch(request_id)
        with self._lock:
            batch.request_id = request_id
            abandoned = sorted(batch.abandoned)
        logger.info(f"SkyPilot launch request {request_id}: {len(batch.commands)} managed jobs {batch.name}")
        for rank, (member, prefix) in enumerate(batch.members):
            launch_record.write(prefix, member, request_id, batch=batch.name, rank=rank)
        for rank in abandoned:
            self._cancel_member(request_id, batch.name, rank)


def _without_run(config: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("run", "name")}
