"""The `sky.Task` the connector launches equals what SkyPilot builds from the equivalent task YAML."""

import shlex

import pytest
import sky
from flytekit import task
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.models.task import TaskTemplate
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilot
from flytekitplugins.skypilot.translate import sky_task, task_yaml

SETTINGS = SerializationSettings(image_config=ImageConfig(default_image=Image(name="d", fqn="ghcr.io/acme/app", tag="7")))


def _template(config: SkyPilot, **task_kwargs):
    @task(task_config=config, **task_kwargs)
    def work(x: int) -> int:
        return x

    template = get_serializable({}, SETTINGS, work).template
    return TaskTemplate.from_flyte_idl(template.to_flyte_idl())  # as propeller hands it over (ints -> floats)


def _same(a: sky.Task, b: sky.Task) -> None:
    def effective(t: sky.Task) -> dict:  # what SkyPilot will run; the echo of the input YAML aside
        config = t.to_yaml_config()
        config.pop("_user_specified_yaml", None)
        return config

    assert effective(a) == effective(b)


def test_container_task_runs_the_task_image_and_command():
    template = _template(SkyPilot(cpus=2, memory="8+", infra="k8s/ctx"), environment={"E": "e"})
    built = sky_task(task_yaml(template, "flyte-job"))
    expected = sky.Task.from_yaml_config({
        "name": "flyte-job",
        "run": shlex.join(template.container.args),
        "envs": {"E": "e", "FLYTE_FAIL_ON_ERROR": "true"},
        "num_nodes": 1,
        "resources": {"infra": "k8s/ctx", "cpus": 2, "memory": "8+", "image_id": "docker:ghcr.io/acme/app:7"},
    })
    _same(built, expected)
    assert built.run.startswith("pyflyte-execute ")
    assert built.envs["FLYTE_FAIL_ON_ERROR"] == "true"
    res = next(iter(built.resources))
    assert res.extract_docker_image() == "ghcr.io/acme/app:7"


def test_on_host_task_has_no_image_and_user_envs_cannot_disable_fail_on_error():
    template = _template(SkyPilot(on_host=True, envs={"FLYTE_FAIL_ON_ERROR": "false", "K": "v"}, setup="echo s"))
    config = task_yaml(template, "j")
    built = sky_task(config)
    assert "resources" not in config
    assert built.envs == {"FLYTE_FAIL_ON_ERROR": "true", "K": "v"}
    assert built.setup == "echo s"
    assert next(iter(built.resources)).extract_docker_image() is None


@pytest.mark.parametrize(
    "config, yaml_resources",
    [
        (SkyPilot(accelerators={"A100": 4}), {"accelerators": {"A100": 4}}),
        (SkyPilot(use_spot=True, disk_size=100), {"use_spot": True, "disk_size": 100}),
        (SkyPilot(infra="slurm/localcluster", cpus="1+"), {"infra": "slurm/localcluster", "cpus": "1+"}),
        (SkyPilot(image_id="docker:python:3.11"), {"image_id": "docker:python:3.11"}),
    ],
)
def test_each_field_matches_skypilots_own_yaml(config, yaml_resources):
    template = _template(config)
    built = sky_task(task_yaml(template, "j"))
    resources = {"image_id": "docker:ghcr.io/acme/app:7", **yaml_resources}
    expected = sky.Task.from_yaml_config(
        {"name": "j", "run": shlex.join(template.container.args), "num_nodes": 1, "resources": resources,
         "envs": {"FLYTE_FAIL_ON_ERROR": "true"}}
    )
    _same(built, expected)


def test_numbers_survive_protobuf():
    built = sky_task(task_yaml(_template(SkyPilot(num_nodes=3, disk_size=64, accelerators={"A100": 2})), "j"))
    assert built.num_nodes == 3
    res = next(iter(built.resources))
    assert res.disk_size == 64 and res.accelerators == {"A100": 2}
