"""Batch inference: a map over a SkyPilot task, one spot L4 per shard, the whole fan-out launched as one
SkyPilot request (its subtasks become the jobs of one `sky.jobs.launch(num_jobs=N)`). Each shard is still
its own Flyte subtask: its own inputs, outputs, status, log link, cancel and retry.

    pyflyte run --remote examples/batch_inference.py batch_inference_wf --num_shards 16
"""

from typing import List

from flytekit import map_task, task, workflow

from flytekitplugins.skypilot import SkyPilot


@task(
    task_config=SkyPilot(accelerators="L4:1", use_spot=True, job_recovery="FAILOVER"),
    container_image="nvcr.io/nvidia/pytorch:24.05-py3",
    retries=2,
)
def score_shard(shard: int) -> float:
    """Scores one shard of the dataset on this job's GPU (a stand-in for loading a model and a shard)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device=device).manual_seed(shard)
    scores = torch.rand(10_000, device=device, generator=generator)
    return float(scores.mean())


@task
def shards(num_shards: int) -> List[int]:
    return list(range(num_shards))


@task
def average(scores: List[float]) -> float:
    return sum(scores) / len(scores)


@workflow
def batch_inference_wf(num_shards: int = 16) -> float:
    return average(scores=map_task(score_shard)(shard=shards(num_shards=num_shards)))
