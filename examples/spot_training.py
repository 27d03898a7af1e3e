"""A training loop on spot GPUs: SkyPilot relaunches it elsewhere when it is preempted, and the relaunched job
resumes from the last Flyte checkpoint it saved instead of from epoch 0.

    pyflyte run --remote examples/spot_training.py spot_wf --epochs 20

The finished task's message and custom_info say where it ran, for how long, how often it was recovered and
what it cost at SkyPilot's catalog prices.
"""

import json

from flytekit import current_context, task, workflow

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
    checkpoint = current_context().checkpoint
    saved = checkpoint.read()  # None on a first run; the last saved state after a preemption
    state = json.loads(saved) if saved else {"epoch": 0, "loss": 1.0}
    for epoch in range(state["epoch"], epochs):
        state = {"epoch": epoch + 1, "loss": state["loss"] * 0.5}  # one epoch of training
        checkpoint.write(json.dumps(state).encode())
    return state["loss"]


@workflow
def spot_wf(epochs: int = 3) -> float:
    return train(epochs=epochs)
