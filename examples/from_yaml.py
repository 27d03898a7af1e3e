"""A Flyte task configured from an existing SkyPilot task YAML."""

from pathlib import Path

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot


@task(
    task_config=SkyPilot.from_yaml(Path(__file__).with_name("train.sky.yaml")),
    container_image="ghcr.io/acme/train:latest",
)
def finetune(dataset: str) -> str:
    return f"/datasets/{dataset}/model"


@workflow
def yaml_wf(dataset: str = "wiki") -> str:
    return finetune(dataset=dataset)
