"""SkyPilot YAML tasks: declaration checks, the job SkyPilot builds, outputs read back."""

import os
from pathlib import Path

import pytest
import sky
from flytekit import FlyteContextManager, FlyteFile
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate
from flytekit.tools.translator import get_serializable
from flytekit.types.directory import FlyteDirectory

from flytekitplugins.skypilot import SkyPilotYamlTask
from flytekitplugins.skypilot.translate import sky_task, task_yaml
from flytekitplugins.skypilot.yaml_io import MissingOutput, job_output_dir, read_outputs

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = SerializationSettings(image_config=ImageConfig(default_image=Image(name="d", fqn="img", tag="1")))
YAML = {
    "resources": {"cpus": "2+", "accelerators": "L4:1"},
    "envs": {"EPOCHS": 3, "DATA": "s3://bkt/data", "LR": None},
    "secrets": {"HF_TOKEN": None},
    "setup": "pip install -r requirements.txt",
    "run": "python train.py --epochs $EPOCHS",
}


def _template(task: SkyPilotYamlTask) -> TaskTemplate:
    template = get_serializable({}, SETTINGS, task).template
    return TaskTemplate.from_flyte_idl(template.to_flyte_idl())  # as propeller hands it over


def _inputs(task: SkyPilotYamlTask, **values) -> LiteralMap:
    ctx = FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, values, task.get_input_types())


def test_inputs_set_the_yamls_envs_as_skypilots_own_env_overrides(tmp_path):
    train = SkyPilotYamlTask("train", YAML, inputs={"epochs": int, "lr": float})
    template = _template(train)
    built = sky_task(task_yaml(template, "flyte-j", {"HF_TOKEN": "hf-value-9f3"}, _inputs(train, epochs=7, lr=0.5)))
    expected = sky.Task.from_yaml_config(
        {**YAML, "name": "flyte-j", "secrets": {"HF_TOKEN": "hf-value-9f3"}},
        env_overrides=[("EPOCHS", "7"), ("LR", "0.5")],
    )

    def config(t):
        return {k: v for k, v in t.to_yaml_config().items() if k != "_user_specified_yaml"}

    assert config(built) == config(expected)
    assert built.run == YAML["run"] and built.envs["EPOCHS"] == "7" and built.envs["DATA"] == "s3://bkt/data"
    assert "hf-value-9f3" not in str(template.custom)  # the template holds the secret's name only
    assert template.custom["secrets"] == ["HF_TOKEN"] and template.container is None


def test_a_yaml_file_with_outputs_gets_an_output_dir_on_the_shared_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))
    task = SkyPilotYamlTask(
        "eval",
        ROOT / "examples" / "eval.sky.yaml",
        inputs={"model": str, "samples": int},
        outputs={"score": float, "report": FlyteFile},
    )
    prefix = tmp_path / "run" / "n0"
    config = task_yaml(_template(task), "j", None, _inputs(task, model="m", samples=5), str(prefix))
    assert config["envs"] == {"MODEL": "m", "SAMPLES": "5", "FLYTE_OUTPUT_DIR": str(prefix / "outputs")}
    assert (prefix / "outputs").is_dir() and os.stat(prefix / "outputs").st_mode & 0o777 == 0o777


def test_a_bucket_prefix_is_reached_by_mounting_the_bucket():
    path, mounts = job_output_dir("s3://team-bucket/flyte/raw/ab/n0-0")
    assert mounts == {"/flyte-outputs": {"source": "s3://team-bucket", "mode": "MOUNT"}}
    assert path == "/flyte-outputs/flyte/raw/ab/n0-0/outputs"
    with pytest.raises(ValueError, match="cannot mount"):
        job_output_dir("abfs://container/x")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(task={"run": "x", "workdir": "."}), "`workdir:` cannot be part of a YAML task"),
        (dict(task={"run": "x", "service": {"readiness_probe": "/"}}), "`service:` cannot be part of a YAML task"),
        (dict(task={"resources": {"cpus": 2}}), "has no `run:`"),
        (dict(task={"run": "x", "secrets": {"HF_TOKEN": "hf_abc"}}), "carry values"),
        (
            dict(task={"run": "x", "envs": {"EPOCHS": 1}}, inputs={"epoch_count": int}),
            "input 'epoch_count' matches none of the YAML's envs",
        ),
        (dict(task={"run": "x", "envs": {"LR": None}}), r"envs: \['LR'\] have no value"),
        (dict(task={"run": "x", "envs": {"CFG": "{}"}}, inputs={"cfg": dict}), "input 'cfg': dict cannot pass"),
        (dict(task={"run": "x"}, outputs={"losses": list}), "output 'losses': list cannot pass"),
        (dict(task={"run": "x", "resourcez": {}}), "resourcez"),
    ],
)
def test_bad_yaml_tasks_fail_at_declaration_naming_what_to_fix(kwargs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        SkyPilotYamlTask("t", **kwargs)


def test_outputs_are_read_as_declared(tmp_path):
    out = tmp_path / "outputs"
    (out / "data").mkdir(parents=True)
    (out / "n").write_text("42\n")
    (out / "ok").write_text("true")
    (out / "model").write_text("weights")
    literals = read_outputs(str(tmp_path), {"n": "integer", "ok": "boolean", "model": "file", "data": "directory"})
    ctx = FlyteContextManager.current_context()
    values = TypeEngine.literal_map_to_kwargs(
        ctx, literals, {"n": int, "ok": bool, "model": FlyteFile, "data": FlyteDirectory}
    )
    assert values["n"] == 42 and values["ok"] is True
    assert Path(values["model"].path).read_text() == "weights"
    with pytest.raises(MissingOutput, match=r"wrote no \$FLYTE_OUTPUT_DIR/score"):
        read_outputs(str(tmp_path), {"score": "float"})
    (out / "score").write_text("high")
    with pytest.raises(MissingOutput, match="'high', which is not a float"):
        read_outputs(str(tmp_path), {"score": "float"})
