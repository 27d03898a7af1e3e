"""A job SkyPilot recovered resumes from the Flyte checkpoint its interrupted run saved.

SkyPilot relaunches a recovered managed job (after a preemption or a lost node) with the same command, so the
relaunched task's checkpoint path is the one the interrupted run was writing to, while Flyte's previous-checkpoint
path still points at the previous Flyte attempt's. When the task's own checkpoint path already holds a
checkpoint, the task reads it as its previous checkpoint (`current_context().checkpoint.read()` / `restore()`)
and keeps saving to the same place. A task that never checkpoints restarts as before.
"""

from typing import Optional

from flytekit import FlyteContext, logger
from flytekit.core.checkpointer import SyncCheckpoint


def resume_from_own_checkpoint(ctx: FlyteContext) -> Optional[str]:
    """Points the task's previous checkpoint at its own checkpoint path if this run is a recovery.

    Also drops a previous checkpoint that was never written (local runs name one for every task), so that
    `checkpoint.read()` answers None instead of failing on a missing path.
    """
    params = ctx.user_space_params
    checkpoint = getattr(params, "_checkpoint", None) if params else None
    if not isinstance(checkpoint, SyncCheckpoint) or not checkpoint._checkpoint_dest:
        return None
    dest, src = checkpoint._checkpoint_dest, checkpoint._checkpoint_src
    if _has_files(ctx, dest):
        params._checkpoint = SyncCheckpoint(checkpoint_dest=dest, checkpoint_src=dest)
        logger.warning(f"SkyPilot recovered this job: resuming from the checkpoint its interrupted run saved at {dest}")
        return dest
    if src and not _has_files(ctx, src):
        params._checkpoint = SyncCheckpoint(checkpoint_dest=dest)
    return None


def _has_files(ctx: FlyteContext, path: str) -> bool:
    try:
        fs = ctx.file_access.get_filesystem_for_path(path)
        return fs.exists(path) and bool(fs.ls(path))
    except Exception as e:  # no checkpoint to resume from is the safe reading
        logger.debug(f"no checkpoint read at {path}: {e}")
        return False
