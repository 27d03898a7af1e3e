"""A training task on spot GPUs that SkyPilot relaunches elsewhere when it is preempted."""

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot

SPOT_GPU = SkyPilot(
    accelerators=["A100:1", "L4:1"],  # candidates: whichever is available
    use_spot=True,
    job_recovery={"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": 2},
    disk_size=100,
    secrets=["WANDB_API_KEY"],  # a name: the connector supplies the value
)


@task(task_config=SPOT_GPU, container_image="ghcr.io/acme/train:latest")
def train(epochs: int) -> float:
    loss = 1.0
    for _ in range(epochs):
        loss *= 0.5
    return loss


@workflow
def spot_wf(epochs: int = 3) -> float:
    return train(epochs=epochs)
