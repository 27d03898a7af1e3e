"""Flyte's own task settings on SkyPilot tasks: each becomes the SkyPilot field it means, or is refused when the
task is declared, naming the setting and the fix. Nothing a user wrote is dropped silently."""

import pytest
from flytekit import Resources, Secret, task
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extras.accelerators import A100, H100, T4
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilot, SkyPilotYamlTask
from flytekitplugins.skypilot.translate import task_yaml


def declare(config=None, **flyte):
    def body() -> int:
        return 1

    return task(task_config=config or SkyPilot(infra="aws"), **flyte)(body)


def resources(t) -> dict:
    return t.task_config.to_task_yaml().get("resources", {})


def test_requests_accelerator_and_interruptible_become_skypilot_resources():
    t = declare(
        requests=Resources(cpu="8", mem="32Gi", gpu="2", ephemeral_storage="100Gi"),
        accelerator=A100,
        interruptible=True,
    )
    assert resources(t) == {
        "infra": "aws",
        "cpus": "8+",
        "memory": "32+",
        "accelerators": "A100:2",
        "use_spot": True,
        "disk_size": 100,
    }


@pytest.mark.parametrize(
    "flyte, expected",
    [
        (dict(requests=Resources(cpu="500m")), {"cpus": "0.5+"}),
        (dict(limits=Resources(mem="1G")), {"memory": "0.94+"}),  # a limit alone is the request; G is decimal
        (dict(resources=Resources(cpu=4, mem="512Mi")), {"cpus": "4+", "memory": "0.5+"}),
        (dict(accelerator=T4), {"accelerators": "T4:1"}),  # an accelerator alone is one of it
        (dict(requests=Resources(gpu="8"), accelerator=H100), {"accelerators": "H100:8"}),
    ],
)
def test_each_flyte_resource_maps_to_its_skypilot_field(flyte, expected):
    assert resources(declare(**flyte)) == {"infra": "aws", **expected}


@pytest.mark.parametrize(
    "flyte, says",
    [
        (dict(requests=Resources(gpu="1")), "needs a GPU type: add accelerator="),
        (dict(requests=Resources(cpu="1"), limits=Resources(cpu="2")), "cannot be capped"),
        (dict(accelerator=A100.partition_1g_5gb), "drop the partition"),
        (dict(shared_memory=True), "shared_memory"),
        (dict(pod_template_name="gpu-pods"), "pod_template"),
        (dict(requests=Resources(cpu="lots")), "not a Kubernetes quantity"),
    ],
)
def test_settings_a_skypilot_job_cannot_honour_are_refused_at_declaration(flyte, says):
    with pytest.raises(ValueError, match=says):
        declare(**flyte)


def test_a_flyte_setting_that_contradicts_skypilot_config_is_refused():
    with pytest.raises(ValueError, match=r"both set cpus: SkyPilot '4\+' vs Flyte '8\+'"):
        declare(SkyPilot(infra="aws", cpus="4+"), requests=Resources(cpu="8"))
    with pytest.raises(ValueError, match="use_spot"):
        declare(SkyPilot(infra="aws", use_spot=False), interruptible=True)
    # the same value said twice is no contradiction
    assert resources(declare(SkyPilot(infra="aws", cpus="8+"), requests=Resources(cpu="8")))["cpus"] == "8+"


def test_an_image_on_a_host_task_is_refused():
    with pytest.raises(ValueError, match="on_host=True"):
        declare(SkyPilot(on_host=True), container_image="ghcr.io/acme/train:1")


def test_flytes_default_image_is_caught_before_anything_is_provisioned():
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable({}, settings, declare()).template
    with pytest.raises(ValueError, match="Flyte's default image .* lacks flytekitplugins-skypilot"):
        task_yaml(template, "j")
    mine = get_serializable({}, settings, declare(container_image="ghcr.io/acme/train:1")).template
    assert task_yaml(mine, "j")["resources"]["image_id"] == "docker:ghcr.io/acme/train:1"


def test_environment_reaches_the_job_below_the_tasks_own_envs():
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    t = declare(
        SkyPilot(infra="aws", envs={"MODE": "skypilot"}),
        environment={"MODE": "flyte", "EXTRA": "1"},
        container_image="ghcr.io/acme/train:1",
    )
    envs = task_yaml(get_serializable({}, settings, t).template, "j")["envs"]
    assert envs["EXTRA"] == "1" and envs["MODE"] == "skypilot"


YAML = {"run": "python train.py", "envs": {"EPOCHS": "1"}}


def test_a_yaml_task_takes_flytes_settings_into_its_yaml_and_metadata():
    t = SkyPilotYamlTask(
        name="train",
        task=dict(YAML),
        inputs={"epochs": int},
        retries=2,
        timeout=600,
        cache=True,
        cache_version="1",
        requests=Resources(cpu="4", gpu="1"),
        accelerator=T4,
        interruptible=True,
        container_image="ghcr.io/a/b:1",
        environment={"WANDB_MODE": "offline"},
        secret_requests=[Secret(group="hf", key="token")],
    )
    assert (t.metadata.retries, t.metadata.timeout.total_seconds(), t.metadata.cache) == (2, 600, True)
    custom = t.get_custom(None)
    assert custom["task"]["resources"] == {
        "cpus": "4+",
        "accelerators": "T4:1",
        "use_spot": True,
        "image_id": "docker:ghcr.io/a/b:1",
    }
    assert custom["task"]["envs"] == {"WANDB_MODE": "offline", "EPOCHS": "1"}
    assert custom["secrets"] == ["HF_TOKEN"] and custom["secret_env"] == {"HF_TOKEN": "_FSEC_HF_TOKEN"}


@pytest.mark.parametrize(
    "flyte, says",
    [
        (dict(pod_template_name="x"), r"does not take \['pod_template_name'\]"),
        (dict(environment={"EPOCHS": "2"}), "the YAML's envs set otherwise"),
        (dict(requests=Resources(cpu="4")), None),
    ],
)
def test_a_yaml_task_refuses_what_it_cannot_honour(flyte, says):
    yaml = {**YAML, "resources": {"cpus": "2+"}}
    with pytest.raises(ValueError, match=says or "both set cpus"):
        SkyPilotYamlTask(name="train", task=yaml, **flyte)


def test_a_task_cannot_ask_for_the_connectors_own_credentials():
    from flytekitplugins.skypilot.translate import secret_values

    with pytest.raises(ValueError, match="the connector's own credentials"):
        SkyPilot(secrets=["SKYPILOT_SERVICE_ACCOUNT_TOKEN"])  # at declaration
    with pytest.raises(ValueError, match="the connector's own credentials"):
        declare(secret_requests=[Secret(group="skypilot_service_account", key="token")])
    with pytest.raises(ValueError, match="the connector's own credentials"):
        secret_values(["skypilot_service_account_token"])  # and at create, whatever the template says
