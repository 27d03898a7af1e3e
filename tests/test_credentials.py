"""Whose credentials go where: task secrets from their own namespace, storage access for every job from the
connector's settings, the connector's own credentials no task's, and every value masked in what the connector
says (stand-in API server)."""

import asyncio

import pytest
from flytekit import task
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilot, SkyPilotConnector, SkyPilotYamlTask, translate
from flytekitplugins.skypilot.settings import ConnectorSettings
from tests.support import fake_runtime, prepare, wait_for
from tests.support.propeller import execution_metadata

STORAGE = {"storage_secrets": ["FLYTE_AWS_ACCESS_KEY_ID", "FLYTE_AWS_SECRET_ACCESS_KEY"]}
STORAGE_URL = "http://store.internal:9000"


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))  # the attempts' output prefixes


@pytest.fixture
def store_credentials(monkeypatch):
    """The connector's storage secrets, as a deployment gives them (`_FSEC_<NAME>`)."""
    monkeypatch.setenv("_FSEC_FLYTE_AWS_ACCESS_KEY_ID", "AKIA_JOBS_ONLY")
    monkeypatch.setenv("_FSEC_FLYTE_AWS_SECRET_ACCESS_KEY", "jobs-secret-key-77")
    return {"FLYTE_AWS_ACCESS_KEY_ID": "AKIA_JOBS_ONLY", "FLYTE_AWS_SECRET_ACCESS_KEY": "jobs-secret-key-77"}


def _create(conn, fn, **inputs):
    template, prefix, metadata = prepare(fn, inputs)
    return asyncio.new_event_loop().run_until_complete(conn.create(template, prefix, None, metadata)), prefix


def _launched_task(server):
    wait_for(lambda: server.launches, 10, every=0.1, what="the launch")
    [body] = [b for b in server._requests.values() if b.get("kind") == "launch"]
    return body["task"]


def test_every_job_gets_storage_access_as_skypilot_secrets_and_nowhere_else(store_credentials):
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server, storage_endpoint=STORAGE_URL, **STORAGE))

    @task(task_config=SkyPilot(cpus="1+", on_host=True))
    def plain() -> int:
        return 1

    meta, prefix = _create(conn, plain)
    launched = _launched_task(server)
    secrets = {k: v.get_secret_value() for k, v in launched.secrets.items()}
    assert secrets == {**store_credentials, "FLYTE_AWS_ENDPOINT": STORAGE_URL}  # flytekit's names in the job
    assert "jobs-secret-key-77" not in repr(launched) and "jobs-secret-key-77" not in str(launched.envs)
    record = open(f"{prefix}/skypilot-launch.json").read()
    assert "jobs-secret-key-77" not in record and "AKIA_JOBS_ONLY" not in record
    assert b"jobs-secret-key-77" not in meta.encode()


def test_a_task_cannot_ask_for_the_storage_secrets_or_the_token_and_launches_nothing(store_credentials):
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server, **STORAGE))

    @task(task_config=SkyPilot(cpus="1+", on_host=True, secrets=["FLYTE_AWS_SECRET_ACCESS_KEY"]))
    def greedy() -> int:
        return 1

    with pytest.raises(ValueError, match=r"FLYTE_AWS_SECRET_ACCESS_KEY.*connector's own credentials"):
        _create(conn, greedy)
    assert server.launches == []
    with pytest.raises(ValueError, match="SKYPILOT_SERVICE_ACCOUNT_TOKEN"):  # at declaration, whatever the settings
        SkyPilot(secrets=["SKYPILOT_SERVICE_ACCOUNT_TOKEN"])


def test_task_secrets_come_from_their_own_namespace_not_the_connectors(monkeypatch):
    """A deployed connector finds a task's secret only under _FSEC_SKYPILOT_TASK_<NAME>: its own variables and
    secrets (here a storage key it holds for itself) are out of a task's reach."""
    monkeypatch.setenv("_FSEC_FLYTE_AWS_SECRET_ACCESS_KEY", "the-connectors-own")
    monkeypatch.setenv("FLYTE_AWS_SECRET_ACCESS_KEY", "the-connectors-own")
    with pytest.raises(ValueError, match="_FSEC_SKYPILOT_TASK_FLYTE_AWS_SECRET_ACCESS_KEY"):
        translate.secret_values(["FLYTE_AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setenv("_FSEC_SKYPILOT_TASK_WANDB_API_KEY", "wandb-for-tasks")
    assert translate.secret_values(["WANDB_API_KEY"]) == {"WANDB_API_KEY": "wandb-for-tasks"}
    # a local pyflyte run: the user is the connector, their own environment counts
    monkeypatch.setenv("HF_TOKEN", "users-own-hf")
    assert translate.secret_values(["HF_TOKEN"], local=True) == {"HF_TOKEN": "users-own-hf"}
    with pytest.raises(ValueError, match="HF_TOKEN"):
        translate.secret_values(["HF_TOKEN"])


def test_an_error_quoting_a_secret_value_leaves_the_connector_masked(monkeypatch, store_credentials):
    """SkyPilot substitutes secrets into what it validates and may quote the result in its error."""
    monkeypatch.setenv("_FSEC_SKYPILOT_TASK_HF_TOKEN", "hf_the_value_1234")
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server, **STORAGE))

    def quoting(config):
        raise ValueError(f"Invalid task: {config['secrets']}")

    monkeypatch.setattr(translate, "sky_task", quoting)

    @task(task_config=SkyPilot(cpus="1+", on_host=True, secrets=["HF_TOKEN"]))
    def uses_hf() -> int:
        return 1

    try:  # SkyPilot's validation runs before the launch: the create fails, or get reports it if it ran later
        meta, _ = _create(conn, uses_hf)
    except ValueError as e:
        message = str(e)
    else:
        message = wait_for(lambda: _message_of_failure(conn, meta), 10, every=0.2, what="the failure reported")
    assert "Invalid task" in message and "********" in message, message
    for value in ("hf_the_value_1234", *store_credentials.values()):
        assert value not in message
    assert server.launches == []


def _message_of_failure(conn, meta):
    answer = asyncio.new_event_loop().run_until_complete(conn.get(meta))
    return "Invalid task" in (answer.message or "") and answer.message


def test_storage_settings_name_the_variable_when_wrong(monkeypatch):
    monkeypatch.setenv("FLYTE_SKYPILOT_STORAGE_SECRETS", "FLYTE_AWS_ACCESS_KEY_ID,not a name")
    with pytest.raises(ValueError, match="FLYTE_SKYPILOT_STORAGE_SECRETS"):
        ConnectorSettings.from_env()
    monkeypatch.setenv("FLYTE_SKYPILOT_STORAGE_SECRETS", "FLYTE_AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("FLYTE_SKYPILOT_STORAGE_ENDPOINT", "minio:9000")
    with pytest.raises(ValueError, match="FLYTE_SKYPILOT_STORAGE_ENDPOINT.*not a URL"):
        ConnectorSettings.from_env()
    monkeypatch.delenv("FLYTE_SKYPILOT_STORAGE_ENDPOINT")
    monkeypatch.delenv("_FSEC_FLYTE_AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("FLYTE_AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(ValueError, match=r"FLYTE_SKYPILOT_STORAGE_SECRETS names FLYTE_AWS_ACCESS_KEY_ID.*_FSEC_"):
        ConnectorSettings.from_env().storage_access()


@pytest.mark.parametrize(
    "mounts, says",
    [
        ({"/data": "s3://bucket/${HF_TOKEN}"}, "refers to a variable"),
        ({"/data/$USER": "s3://bucket"}, "refers to a variable"),
        ({"/data": "./local/dir"}, "local path"),
        ({"/data": {"source": "~/datasets", "mode": "COPY"}}, "local path"),
    ],
)
def test_file_mounts_with_variables_or_local_sources_are_refused_at_declaration(mounts, says):
    with pytest.raises(ValueError, match=f"file_mounts.*{says}"):
        SkyPilot(file_mounts=mounts)
    SkyPilot(file_mounts={"/data": "s3://bucket/datasets"})  # a bucket URL is what a job can reach


def test_jobs_get_no_api_server_access_unless_the_connector_allows_it():
    """SkyPilot gives a managed job API-server access by default (a service-account token acting as whoever
    launched it, here the connector): the connector turns it off unless FLYTE_SKYPILOT_API_SERVER_ACCESS is set."""

    @task(task_config=SkyPilot(cpus="1+", on_host=True))
    def plain() -> int:
        return 1

    for allowed in (False, True):
        server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
        conn = SkyPilotConnector(runtime=fake_runtime(server, api_server_access=allowed))
        _create(conn, plain)
        launched = _launched_task(server)  # the sky.Task SkyPilot's SDK sends
        assert launched.api_server_access is allowed
        assert ("api_server_access" in launched.to_yaml_config()) is not allowed  # what the API server reads


def test_a_yaml_task_asking_for_api_server_access_is_refused_at_create_when_off(tmp_path):
    asking = SkyPilotYamlTask(name="asks", task={"run": "sky status", "api_server_access": True})
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server))
    template = get_serializable({}, SerializationSettings(image_config=ImageConfig.auto_default_image()), asking)
    create = conn.create(template.template, str(tmp_path), None, execution_metadata("e1", "n0", 0))
    with pytest.raises(ValueError, match="api_server_access.*FLYTE_SKYPILOT_API_SERVER_ACCESS=true"):
        asyncio.new_event_loop().run_until_complete(create)
    assert server.launches == []
    with pytest.raises(ValueError, match="`api_server_access:`.*FLYTE_SKYPILOT_API_SERVER_ACCESS"):
        SkyPilot.from_yaml({"api_server_access": True, "resources": {"cpus": "1+"}})


def test_the_api_server_access_setting_names_its_variable(monkeypatch):
    monkeypatch.setenv("FLYTE_SKYPILOT_API_SERVER_ACCESS", "true")
    assert ConnectorSettings.from_env().api_server_access is True
    monkeypatch.setenv("FLYTE_SKYPILOT_API_SERVER_ACCESS", "perhaps")
    with pytest.raises(ValueError, match="FLYTE_SKYPILOT_API_SERVER_ACCESS"):
        ConnectorSettings.from_env()
