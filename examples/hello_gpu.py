"""Hello GPU: one task on one GPU, wherever SkyPilot finds it (any enabled cloud, Kubernetes or Slurm).

pyflyte run --remote examples/hello_gpu.py gpu_wf
"""

import subprocess

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot


@task(
    task_config=SkyPilot(accelerators="L4:1", cpus="4+", memory="16+"),
    container_image="nvcr.io/nvidia/pytorch:24.05-py3",
)
def which_gpu() -> str:
    return subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@workflow
def gpu_wf() -> str:
    return which_gpu()
