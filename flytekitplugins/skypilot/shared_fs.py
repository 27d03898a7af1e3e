"""Local runs whose SkyPilot jobs share this machine's filesystem (explicitly declared, never guessed).

A local `pyflyte run` keeps the task's inputs and outputs under a local path; a job elsewhere cannot reach
it. Setting FLYTE_SKYPILOT_SHARED_DIR=<dir> declares that the jobs' hosts see this machine's files at the
same paths (a Slurm cluster on a shared filesystem, or the local test bed): local runs then keep their data
under <dir>, and `on_host` tasks run with this interpreter's environment and the task's source root.
"""

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import urlparse

SHARED_DIR_ENV = "FLYTE_SKYPILOT_SHARED_DIR"


def shared_dir() -> Optional[Path]:
    value = os.environ.get(SHARED_DIR_ENV)
    return Path(value).resolve() if value else None


def local_path(prefix: str) -> Optional[Path]:
    """The local path of a prefix, or None when it is remote storage (s3://, gs://, ...)."""
    parsed = urlparse(prefix)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else prefix).resolve()
    return None


def unreachable(prefix: str) -> str:
    return (
        f"The task's data is at the local path {prefix}, which a SkyPilot job on another machine cannot read "
        "or write. Run with remote storage: `pyflyte run --raw-output-data-prefix s3://<bucket>/<path> ...` "
        f"(any fsspec URL the job can reach), or, if the jobs' hosts share this filesystem, declare it with "
        f"{SHARED_DIR_ENV}=<a directory both sides see at the same path>."
    )


def open_to_job(prefix: str) -> None:
    """Checks a local output prefix is reachable and lets the job's user (often another one) write there."""
    path, root = local_path(prefix), shared_dir()
    if path is None:
        return
    if root is None or not path.is_relative_to(root):
        raise ValueError(unreachable(prefix))
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # outputs.pb / error.pb are written by the job's user
    for parent in path.parents:  # traversable up to the shared directory
        if parent == root or not parent.is_relative_to(root):
            break
        parent.chmod(parent.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_data_dir() -> str:
    """A fresh directory under the shared directory for one local run's raw data."""
    root = shared_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix="flyte-run-", dir=root)
    os.chmod(path, 0o755)
    return path


def host_env(source_root: Optional[str]) -> Dict[str, str]:
    """Environment for an on_host job that runs with this interpreter (and imports the task's code from
    `source_root`, unless a code bundle brings it)."""
    bin_dir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"}
    return {**env, "PYTHONPATH": source_root} if source_root else env
