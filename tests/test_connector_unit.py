"""Job names, resource meta and the shared-filesystem rules, without a SkyPilot server."""

import os
import stat

import pytest

from flytekitplugins.skypilot import SkyPilotMetadata, shared_fs
from flytekitplugins.skypilot.connector import job_name
from tests.support import execution_metadata as _meta


def test_job_name_is_deterministic_per_attempt_and_readable():
    a = job_name(_meta("abc123", "n0", 0), "s3://b/x")
    assert a == job_name(_meta("abc123", "n0", 0), "s3://b/other")
    assert a != job_name(_meta("abc123", "n0", 1), "s3://b/x")
    assert a != job_name(_meta("abc124", "n0", 0), "s3://b/x")
    assert a.startswith("flyte-abc123-n0-0-") and len(a) <= 63


def test_local_job_name_comes_from_the_output_prefix():
    assert job_name(None, "/tmp/a") == job_name(None, "/tmp/a") != job_name(None, "/tmp/b")


def test_resource_meta_is_small_json_without_secrets():
    meta = SkyPilotMetadata("flyte-x", "req-1", "s3://bucket/prefix", "http://sky:46580")
    assert SkyPilotMetadata.decode(meta.encode()) == meta
    assert len(meta.encode()) < 300
    full = SkyPilotMetadata("flyte-x", "", "s3://b/p", "http://sky:46580", 2, {"score": "float"}, "team-a100")
    assert SkyPilotMetadata.decode(full.encode()) == full
    # a resource meta written before a field existed still decodes (propeller keeps them across upgrades)
    old = b'{"job_name": "j", "request_id": "r", "output_prefix": "s3://b/p", "endpoint": "http://sky"}'
    assert SkyPilotMetadata.decode(old) == SkyPilotMetadata("j", "r", "s3://b/p", "http://sky")


def test_local_prefix_outside_a_shared_dir_is_refused_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(shared_fs.SHARED_DIR_ENV, raising=False)
    with pytest.raises(ValueError, match="--raw-output-data-prefix s3://"):
        shared_fs.open_to_job(str(tmp_path / "out"))
    monkeypatch.setenv(shared_fs.SHARED_DIR_ENV, str(tmp_path / "shared"))
    with pytest.raises(ValueError, match=shared_fs.SHARED_DIR_ENV):
        shared_fs.open_to_job(str(tmp_path / "elsewhere"))
    shared_fs.open_to_job("s3://bucket/anything")  # remote storage is the job's to reach


def test_local_prefix_in_the_shared_dir_is_opened_to_the_jobs_user(monkeypatch, tmp_path):
    monkeypatch.setenv(shared_fs.SHARED_DIR_ENV, str(tmp_path))
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    shared_fs.open_to_job(f"file://{run}/abc")
    assert stat.S_IMODE(os.stat(run / "abc").st_mode) == 0o777
    assert os.stat(run).st_mode & stat.S_IXOTH


def test_secrets_are_names_in_the_template_and_values_only_in_the_sky_task(monkeypatch):
    from flytekit import Secret, task
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    from flytekitplugins.skypilot import SkyPilot
    from flytekitplugins.skypilot.connector import secret_values
    from flytekitplugins.skypilot.translate import sky_task, task_yaml

    monkeypatch.setenv("_FSEC_SKYPILOT_TASK_HF_TOKEN", "hf_value_123")
    monkeypatch.setenv("_FSEC_SKYPILOT_TASK_WANDB_API_KEY", "wandb_value_456")

    # SkyPilot's own secret names, and Flyte's secret_requests (which flytekit's secrets manager reads in the job)
    @task(
        task_config=SkyPilot(secrets=["HF_TOKEN"]),
        container_image="ghcr.io/acme/train:1",
        secret_requests=[Secret(group="wandb", key="api_key")],
    )
    def t() -> None: ...

    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable({}, settings, t).template
    assert "hf_value_123" not in str(template.to_flyte_idl())
    assert "wandb_value_456" not in str(template.to_flyte_idl())
    assert template.custom["secrets"] == ["HF_TOKEN", "WANDB_API_KEY"]
    built = sky_task(task_yaml(template, "j", secret_values(template.custom["secrets"])))
    assert built.secrets["HF_TOKEN"].get_secret_value() == "hf_value_123"  # SkyPilot holds it as a SecretStr
    assert built.secrets["_FSEC_WANDB_API_KEY"].get_secret_value() == "wandb_value_456"
    assert "WANDB_API_KEY" not in built.secrets  # the job reads it where current_context().secrets looks
    assert "hf_value_123" not in repr(built)


def test_a_missing_secret_names_itself_and_where_the_connector_looks(monkeypatch):
    from flytekitplugins.skypilot.connector import secret_values

    monkeypatch.delenv("_FSEC_SKYPILOT_TASK_NOPE", raising=False)
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ValueError, match="secret 'NOPE'.*_FSEC_SKYPILOT_TASK_NOPE.*/etc/secrets/skypilot_task/nope"):
        secret_values(["NOPE"])


def test_a_launch_record_belongs_to_its_job_name(tmp_path):
    from flytekitplugins.skypilot import launch_record

    assert launch_record.read(str(tmp_path), "flyte-a") is None  # never launched
    launch_record.write(str(tmp_path), "flyte-a", None)  # the intent, before sky.jobs.launch
    assert launch_record.read(str(tmp_path), "flyte-a") == {"job_name": "flyte-a", "request_id": None}
    launch_record.write(f"file://{tmp_path}/", "flyte-a", "req-1")
    assert launch_record.read(str(tmp_path), "flyte-a")["request_id"] == "req-1"
    assert launch_record.read(str(tmp_path), "flyte-b") is None  # another job's record is not this one's
    (tmp_path / launch_record.RECORD).write_text("{not json")
    assert launch_record.read(str(tmp_path), "flyte-a") is None
