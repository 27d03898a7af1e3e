"""SkyPilot YAML tasks: declaration checks, the job SkyPilot builds, outputs read back."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sky
from flytekit import FlyteContextManager, FlyteFile
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.core.data_persistence import FileAccessProvider
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate
from flytekit.tools.translator import get_serializable
from flytekit.types.directory import FlyteDirectory

from flytekitplugins.skypilot import SkyPilotYamlTask
from flytekitplugins.skypilot.translate import sky_task, task_yaml
from flytekitplugins.skypilot.yaml_io import MissingOutput, job_output_dir, read_outputs, with_upload
from tests.support.store import object_store

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


def _job(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)


def test_a_bucket_prefix_gets_the_outputs_uploaded_by_a_step_after_the_yamls_own_run(tmp_path, monkeypatch):
    with object_store(tmp_path / "s3") as store:
        prefix = f"s3://flyte/raw/{uuid.uuid4().hex[:6]}/n0-0"
        name = f"job-{uuid.uuid4().hex[:6]}"
        local, step = job_output_dir(prefix, name)
        assert local == f"/tmp/flyte-outputs-{name}" and step
        run = 'cd "$FLYTE_OUTPUT_DIR"; echo 2.5 > score; mkdir d; echo x > d/f; exit 0'
        venv = {**os.environ, **store, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        job = _job(with_upload(run, local, step), {**venv, "FLYTE_OUTPUT_DIR": local})
        assert job.returncode == 0, job.stderr  # the YAML's own `exit 0` ends its part, not the upload
        for k, v in store.items():
            monkeypatch.setenv(k, v)
        store_access = FileAccessProvider(str(tmp_path / "sandbox"), prefix)  # the connector's own credentials
        with FlyteContextManager.with_context(FlyteContextManager.current_context().with_file_access(store_access)):
            outputs = read_outputs(prefix, {"score": "float", "d": "directory"})
        assert outputs.literals["score"].scalar.primitive.float_value == 2.5
        assert outputs.literals["d"].scalar.blob.uri == f"{prefix}/outputs/d"
        stored = tmp_path / "s3" / "flyte" / prefix[len("s3://flyte/") :] / "outputs" / "d" / "f"
        assert stored.read_text() == "x\n"
        # a failing run keeps its exit code and uploads nothing; no credentials: the storage error, not success
        failed = _job(with_upload("exit 7", "/tmp/flyte-outputs-job-2", job_output_dir(prefix + "x", "job-2")[1]), venv)
        assert failed.returncode == 7
        anonymous = {k: v for k, v in venv.items() if not k.startswith("FLYTE_AWS_")}
        anonymous.update(AWS_ACCESS_KEY_ID="wrong", AWS_SECRET_ACCESS_KEY="wrong")
        denied = _job(
            with_upload("true", local, step), {**anonymous, "FLYTE_AWS_ENDPOINT": store["FLYTE_AWS_ENDPOINT"]}
        )
        assert (
            denied.returncode == 1
            and "cannot upload d to s3://flyte/" in denied.stderr
            and "PermissionError" in denied.stderr
        )


def test_a_job_whose_python_lacks_the_plugin_says_what_to_install():
    local, step = job_output_dir("s3://b/raw/n0", "job-3")
    job = _job(with_upload("true", local, step), {**os.environ, "PATH": "/usr/bin:/bin"})
    assert job.returncode == 3 and "pip install flytekitplugins-skypilot" in job.stderr


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
