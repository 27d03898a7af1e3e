"""Tasks the real-bed tests run as SkyPilot managed jobs (on the host: the bed's Slurm has no containers)."""

import hashlib
import os
import time

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot

BED = dict(infra="slurm/localcluster", cpus="1+", on_host=True)


@task(task_config=SkyPilot(**BED))
def repeat(word: str, times: int) -> str:
    return "-".join([word] * times) + f"@{os.environ['SKYPILOT_TASK_ID']}"


@task(task_config=SkyPilot(**BED))
def boom() -> int:
    if os.environ.get("SKYPILOT_TASK_ID"):  # in the managed job
        raise ValueError("boom")
    return 0


@task(task_config=SkyPilot(**BED))
def sleep(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@task(task_config=SkyPilot(infra="slurm/localcluster", accelerators="H100:8", on_host=True))
def needs_h100() -> int:
    return 1


@task(task_config=SkyPilot(**BED, secrets=["BED_TOKEN"]))
def token_digest() -> str:
    return hashlib.sha256(os.environ["BED_TOKEN"].encode()).hexdigest()


@workflow
def secret_wf() -> str:
    return token_digest()


@workflow
def boom_wf() -> int:
    return boom()


@workflow
def h100_wf() -> int:
    return needs_h100()
