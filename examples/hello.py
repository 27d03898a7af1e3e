"""A Flyte workflow whose task runs as a SkyPilot managed job.

On the local test bed (Slurm, no container runtime) the task runs on the host: `on_host=True`.
Against a cloud or Kubernetes, drop `on_host` and the job runs the task's container image.
"""

import os
import socket

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot

INFRA = os.environ.get("SKYPILOT_INFRA", "slurm/localcluster")


@task(task_config=SkyPilot(infra=INFRA, cpus="1+", on_host=True))
def greet(name: str, times: int) -> str:
    host = socket.gethostname()
    job = os.environ.get("SKYPILOT_TASK_ID", "?")
    return f"{' '.join([f'hello {name}'] * times)} (from SkyPilot managed job {job} on {host})"


@workflow
def hello_wf(name: str = "flyte", times: int = 2) -> str:
    return greet(name=name, times=times)
