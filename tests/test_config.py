"""`SkyPilot(...)` is validated at declaration and serialised in SkyPilot's task-YAML vocabulary."""

import pytest
from flytekit import task
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from pydantic import ValidationError

from flytekitplugins.skypilot import SkyPilot, SkyPilotFunctionTask


@pytest.mark.parametrize(
    "kwargs, field, hint",
    [
        ({"cpus": "lots"}, "cpus", '"4+"'),
        ({"memory": "big"}, "memory", '"16+"'),
        ({"accelerators": "H100:eight"}, "accelerators", '"H100:8"'),
        ({"accelerators": {"H100": 0}}, "accelerators", "positive"),
        ({"num_nodes": 0}, "num_nodes", "greater than or equal to 1"),
        ({"disk_size": -5}, "disk_size", "greater than 0"),
        ({"infra": "aws//us-east-1"}, "infra", "empty parts"),
        ({"envs": {"NOT A NAME": "x"}}, "envs", "environment variable names"),
        ({"accelerator": "H100:8"}, "accelerator", "Extra inputs are not permitted"),
        ({"on_host": True, "image_id": "docker:ubuntu"}, "on_host", "drop image_id"),
    ],
)
def test_bad_config_fails_at_declaration_naming_the_field(kwargs, field, hint):
    with pytest.raises(ValidationError) as e:
        SkyPilot(**kwargs)
    assert field in str(e.value) and hint in str(e.value)


def test_bad_config_fails_when_the_task_is_declared():
    with pytest.raises(ValidationError, match="cpus"):

        @task(task_config=SkyPilot(cpus="lots"))
        def t() -> None: ...


def test_config_is_skypilot_task_yaml_in_template_custom():
    @task(
        task_config=SkyPilot(
            infra="aws/us-east-1", cpus="4+", memory=16, accelerators="H100:8", disk_size=256,
            use_spot=True, num_nodes=2, envs={"A": "1"}, setup="pip list", pool="p1",
        ),
        container_image="ghcr.io/acme/train:1",
    )
    def train(x: int) -> int:
        return x

    assert isinstance(train, SkyPilotFunctionTask)
    settings = SerializationSettings(image_config=ImageConfig(default_image=Image(name="d", fqn="x", tag="1")))
    template = get_serializable({}, settings, train).template
    assert template.type == "skypilot"
    assert template.custom == {
        "task": {
            "num_nodes": 2,
            "resources": {"infra": "aws/us-east-1", "cpus": "4+", "memory": 16, "accelerators": "H100:8",
                          "disk_size": 256, "use_spot": True},
            "envs": {"A": "1"},
            "setup": "pip list",
        },
        "on_host": False,
        "pool": "p1",
    }
    assert template.container.image == "ghcr.io/acme/train:1"
    assert template.container.args[0] == "pyflyte-execute"
