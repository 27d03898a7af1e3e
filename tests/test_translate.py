"""The `sky.Task` the connector launches equals what SkyPilot builds from the equivalent task YAML."""

import shlex
import subprocess

import pytest
import sky
from flytekit import task
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.models.task import TaskTemplate
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import NodeInfo, SkyPilot, node_info
from flytekitplugins.skypilot.translate import sky_task, task_yaml

SETTINGS = SerializationSettings(
    image_config=ImageConfig(default_image=Image(name="d", fqn="ghcr.io/acme/app", tag="7"))
)


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
        resources = config.get("resources") or {}
        if "any_of" in resources:  # a set in SkyPilot: no order to compare
            resources["any_of"] = sorted(resources["any_of"], key=repr)
        return config

    assert effective(a) == effective(b)


def test_container_task_runs_the_task_image_and_command():
    template = _template(SkyPilot(cpus=2, memory="8+", infra="k8s/ctx"), environment={"E": "e"})
    built = sky_task(task_yaml(template, "flyte-job"))
    expected = sky.Task.from_yaml_config(
        {
            "name": "flyte-job",
            "run": shlex.join(template.container.args),
            "envs": {"E": "e", "FLYTE_FAIL_ON_ERROR": "true"},
            "num_nodes": 1,
            "resources": {"infra": "k8s/ctx", "cpus": 2, "memory": "8+", "image_id": "docker:ghcr.io/acme/app:7"},
        }
    )
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
        (SkyPilot(accelerators=["H100:8", "A100-80GB:8"]), {"accelerators": ["H100:8", "A100-80GB:8"]}),
        (
            SkyPilot(accelerators="tpu-v5e-8", accelerator_args={"runtime_version": "v2-alpha-tpuv5-lite"}),
            {"accelerators": "tpu-v5e-8", "accelerator_args": {"runtime_version": "v2-alpha-tpuv5-lite"}},
        ),
        (
            SkyPilot(cloud="gcp", region="us-central1", zone="us-central1-a"),
            {"cloud": "gcp", "region": "us-central1", "zone": "us-central1-a"},
        ),
        (
            SkyPilot(instance_type="p5.48xlarge", disk_tier="high", network_tier="best"),
            {"instance_type": "p5.48xlarge", "disk_tier": "high", "network_tier": "best"},
        ),
        (
            SkyPilot(labels={"team": "ml"}, ports=[8080], max_hourly_cost=12.5),
            {"labels": {"team": "ml"}, "ports": [8080], "max_hourly_cost": 12.5},
        ),
        (
            SkyPilot(
                use_spot=True,
                job_recovery={
                    "strategy": "EAGER_NEXT_REGION",
                    "max_restarts_on_errors": 3,
                    "recover_on_exit_codes": [33],
                },
            ),
            {
                "use_spot": True,
                "job_recovery": {
                    "strategy": "EAGER_NEXT_REGION",
                    "max_restarts_on_errors": 3,
                    "recover_on_exit_codes": [33],
                },
            },
        ),
        (SkyPilot(job_recovery="FAILOVER"), {"job_recovery": "FAILOVER"}),
        (SkyPilot(priority=100, priority_class="high"), {"priority": 100, "priority_class": "high"}),
        (
            SkyPilot(any_of=[{"infra": "aws", "accelerators": "A100:8"}, {"infra": "gcp", "accelerators": "H100:8"}]),
            {"any_of": [{"infra": "aws", "accelerators": "A100:8"}, {"infra": "gcp", "accelerators": "H100:8"}]},
        ),
        (
            SkyPilot(ordered=[{"infra": "k8s"}, {"infra": "aws", "use_spot": True}]),
            {"ordered": [{"infra": "k8s"}, {"infra": "aws", "use_spot": True}]},
        ),
    ],
)
def test_each_field_matches_skypilots_own_yaml(config, yaml_resources):
    template = _template(config)
    built = sky_task(task_yaml(template, "j"))
    resources = {"image_id": "docker:ghcr.io/acme/app:7", **yaml_resources}
    expected = sky.Task.from_yaml_config(
        {
            "name": "j",
            "run": shlex.join(template.container.args),
            "num_nodes": 1,
            "resources": resources,
            "envs": {"FLYTE_FAIL_ON_ERROR": "true"},
        }
    )
    _same(built, expected)


def test_numbers_survive_protobuf():
    built = sky_task(task_yaml(_template(SkyPilot(num_nodes=3, disk_size=64, accelerators={"A100": 2})), "j"))
    assert built.num_nodes == 3
    res = next(iter(built.resources))
    assert res.disk_size == 64 and res.accelerators == {"A100": 2}


@pytest.mark.parametrize(
    "config, yaml_task",
    [
        (
            SkyPilot(
                file_mounts={
                    "/data": "s3://bkt/prefix",
                    "/ckpt": {"source": "gs://ckpt-bucket", "mode": "MOUNT_CACHED"},
                }
            ),
            {
                "file_mounts": {
                    "/data": "s3://bkt/prefix",
                    "/ckpt": {"source": "gs://ckpt-bucket", "mode": "MOUNT_CACHED"},
                }
            },
        ),
        (
            SkyPilot(
                config={"kubernetes": {"pod_config": {"spec": {"runtimeClassName": "nvidia"}}}},
                kueue_local_queue="team-a",
            ),
            {
                "config": {
                    "kubernetes": {
                        "pod_config": {"spec": {"runtimeClassName": "nvidia"}},
                        "kueue": {"local_queue_name": "team-a"},
                    }
                }
            },
        ),
        (
            SkyPilot(config={"slurm": {"sbatch_options": {"account": "ml"}}}),
            {"config": {"slurm": {"sbatch_options": {"account": "ml"}}}},
        ),
    ],
)
def test_task_level_fields_match_skypilots_own_yaml(config, yaml_task):
    template = _template(config)
    built = sky_task(task_yaml(template, "j"))
    expected = sky.Task.from_yaml_config(
        {
            "name": "j",
            "run": shlex.join(template.container.args),
            "num_nodes": 1,
            "resources": {"image_id": "docker:ghcr.io/acme/app:7"},
            "envs": {"FLYTE_FAIL_ON_ERROR": "true"},
            **yaml_task,
        }
    )
    _same(built, expected)


@pytest.mark.parametrize("rank, prefix", [("0", "s3://b/run/n0"), ("1", "s3://b/run/n0/node-1")])
def test_multi_node_run_exports_torch_variables_and_sends_other_nodes_outputs_aside(rank, prefix, tmp_path):
    template = _template(SkyPilot(num_nodes=2, envs={"MASTER_PORT": "1234"}))
    args = list(template.container.args)
    args[args.index("--output-prefix") + 1] = "s3://b/run/n0"
    template.container._args = args
    built = sky_task(task_yaml(template, "j"))
    assert built.num_nodes == 2
    # Run the job's command as SkyPilot would on node `rank`, with `exec` landing on a recorder.
    recorder = tmp_path / "pyflyte-execute"
    recorder.write_text(
        '#!/bin/sh\necho "$MASTER_ADDR $MASTER_PORT $WORLD_SIZE $NODE_RANK $RANK"\n'
        'while [ "$1" != --output-prefix ]; do shift; done; echo "$2"\n'
    )
    recorder.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "SKYPILOT_NODE_RANK": rank,
        "SKYPILOT_NUM_NODES": "2",
        "SKYPILOT_NODE_IPS": "10.0.0.5\n10.0.0.6",
        **built.envs,
    }
    out = subprocess.run(["bash", "-c", built.run], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == [f"10.0.0.5 1234 2 {rank} {rank}", prefix]


def test_node_info_reads_skypilots_variables(monkeypatch):
    monkeypatch.setenv("SKYPILOT_NODE_RANK", "1")
    monkeypatch.setenv("SKYPILOT_NODE_IPS", "10.0.0.5\n10.0.0.6\n")
    monkeypatch.setenv("SKYPILOT_NUM_NODES", "2")
    monkeypatch.setenv("SKYPILOT_NUM_GPUS_PER_NODE", "8")
    node = node_info()
    assert (node.rank, node.num_nodes, node.head_ip, node.is_head, node.gpus_per_node) == (1, 2, "10.0.0.5", False, 8)


def test_node_info_outside_a_job_is_one_head_node(monkeypatch):
    for var in ("SKYPILOT_NODE_RANK", "SKYPILOT_NODE_IPS", "SKYPILOT_NUM_NODES", "SKYPILOT_NUM_GPUS_PER_NODE"):
        monkeypatch.delenv(var, raising=False)
    assert node_info() == NodeInfo(rank=0, num_nodes=1, ips=["127.0.0.1"], gpus_per_node=0)


def test_execution_envs_reach_the_job_below_the_tasks_own():
    from flytekitplugins.skypilot.translate import with_execution_envs

    config = {"run": "pyflyte-execute x", "envs": {"MODE": "task", "FLYTE_FAIL_ON_ERROR": "true"}}
    execution = {"MODE": "execution", "RUN_ID": "r 1", "FLYTE_K8S_ARRAY_INDEX": "3"}
    assert with_execution_envs(config, execution)["envs"] == {
        "RUN_ID": "r 1",
        "FLYTE_K8S_ARRAY_INDEX": "3",
        "MODE": "task",
        "FLYTE_FAIL_ON_ERROR": "true",
    }
    # a batch's jobs share `envs:`: each subtask's own go into its command (quoted for the shell)
    in_run = with_execution_envs(config, execution, in_run=True)
    assert in_run["envs"] == config["envs"]
    assert in_run["run"] == "export FLYTE_K8S_ARRAY_INDEX=3 RUN_ID='r 1'; pyflyte-execute x"
    assert with_execution_envs(config, None) == config
