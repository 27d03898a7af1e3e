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
        ({"disk_size": -5}, "disk_size", "positive whole size"),
        ({"infra": "aws//us-east-1"}, "infra", "empty parts"),
        ({"envs": {"NOT A NAME": "x"}}, "envs", "environment variable names"),
        ({"accelerator": "H100:8"}, "accelerator", "did you mean 'accelerators'"),
        ({"infra": "aws", "region": "us-east-1"}, "infra", "use infra alone"),
        ({"any_of": [{"cpus": 2}], "ordered": [{"cpus": 4}]}, "ordered", "use one of them"),
        ({"priority": 5000}, "priority", "less than or equal to 1000"),
        ({"secrets": ["hf token"]}, "secrets", "names of the connector's secrets"),
        (
            {"file_mounts": {"/d": {"source": "s3://bkt/sub/dir", "mode": "MOUNT"}}},
            "file_mounts",
            "mount the bucket (s3://bkt) and use sub/dir inside it",
        ),
        ({"disk_tier": "fastest"}, "disk_tier", "'low', 'medium', 'high', 'ultra' or 'best'"),
        ({"job_recovery": {"max_restarts_on_errors": -1}}, "job_recovery", "less than the minimum of 0"),
        ({"any_of": [{"cpu": 2}]}, "any_of", "did you mean 'cpus'"),
        ({"on_host": True, "image_id": "docker:ubuntu"}, "on_host", "drop image_id"),
        ({"cluster_name": "-team"}, "cluster_name", "only contains letters, numbers and dash"),
        ({"pool": "p", "cluster_name": "c"}, "cluster_name", "use one of them"),
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
            infra="aws/us-east-1",
            cpus="4+",
            memory=16,
            accelerators="H100:8",
            disk_size=256,
            use_spot=True,
            num_nodes=2,
            envs={"A": "1"},
            setup="pip list",
            pool="p1",
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
            "resources": {
                "infra": "aws/us-east-1",
                "cpus": "4+",
                "memory": 16,
                "accelerators": "H100:8",
                "disk_size": 256,
                "use_spot": True,
            },
            "envs": {"A": "1"},
            "setup": "pip list",
        },
        "on_host": False,
        "pool": "p1",
        "cluster_name": None,
        "secrets": [],
    }
    assert template.container.image == "ghcr.io/acme/train:1"
    assert template.container.args[0] == "pyflyte-execute"


YAML_TASK = {
    "name": "train",
    "resources": {
        "infra": "aws/us-east-1",
        "accelerators": {"H100": 8},
        "use_spot": True,
        "job_recovery": {"strategy": "FAILOVER", "max_restarts_on_errors": 2},
        "disk_size": 512,
    },
    "num_nodes": 2,
    "envs": {"EPOCHS": "3"},
    "secrets": {"HF_TOKEN": None},
    "file_mounts": {"/data": "s3://bkt"},
    "setup": "pip install -r requirements.txt",
    "config": {"kubernetes": {"pod_config": {"spec": {"runtimeClassName": "nvidia"}}}},
}


def test_from_yaml_gives_the_same_config_as_the_fields(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(__import__("yaml").safe_dump(YAML_TASK))
    expected = SkyPilot(
        infra="aws/us-east-1",
        accelerators={"H100": 8},
        use_spot=True,
        disk_size=512,
        job_recovery={"strategy": "FAILOVER", "max_restarts_on_errors": 2},
        num_nodes=2,
        envs={"EPOCHS": "3"},
        secrets=["HF_TOKEN"],
        file_mounts={"/data": "s3://bkt"},
        setup="pip install -r requirements.txt",
        config={"kubernetes": {"pod_config": {"spec": {"runtimeClassName": "nvidia"}}}},
    )
    assert SkyPilot.from_yaml(path) == expected == SkyPilot.from_yaml(YAML_TASK)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"run": "python train.py"}, "`run:` cannot be part"),
        ({"workdir": "."}, "`workdir:` cannot be part"),
        ({"secrets": {"HF_TOKEN": "hf_abc"}}, "passes secrets by name only"),
        ({"resourcez": {}}, "did you mean 'resources'"),
        ({"resources": {"autostop": 10}}, "['autostop'] are not supported"),
        ({"num_nodes": 0}, "greater than or equal to 1"),
        ({"volumes": {"/mnt": "vol"}}, "attaches no SkyPilot volumes"),
        ({"event_callback": "echo done"}, "`event_callback:` cannot be part"),
    ],
)
def test_from_yaml_rejects_what_a_flyte_task_cannot_take(extra, message):
    with pytest.raises(ValueError) as e:
        SkyPilot.from_yaml({**YAML_TASK, **extra})
    assert message in str(e.value)
    assert "hf_abc" not in str(e.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("resources: [cpus: 4\n", "not valid YAML at line 2"),
        ("num_nodes: 2\n---\nnum_nodes: 3\n", "holds 2 YAML documents"),
        ("6\n", "holds a int, not a task"),
        ("- resources: {}\n", "holds a list, not a task"),
    ],
)
def test_from_yaml_refuses_a_file_that_is_not_one_task(tmp_path, text, message):
    path = tmp_path / "task.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        SkyPilot.from_yaml(path)


def test_from_yaml_refuses_what_is_neither_a_path_nor_a_dict():
    with pytest.raises(ValueError, match="a path or a dict"):
        SkyPilot.from_yaml(6)  # never read as file descriptor 6
