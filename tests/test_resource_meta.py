"""Resource metas across connector releases: propeller keeps a task's meta while the connector is upgraded or
rolled back, so every earlier release's meta decodes (frozen samples in tests/data/metas), a later release's
extra fields are ignored, and a broken meta is refused naming the field, through Flyte's GetTask / DeleteTask too.
"""

import json
from pathlib import Path

import grpc
import pytest
from flyteidl.admin.agent_pb2 import DeleteTaskRequest, GetTaskRequest, TaskCategory
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.extend.backend.connector_service import AsyncConnectorService

from benchmarks.fake_sdk import NO_LATENCY, FakeApiServer
from flytekitplugins.skypilot import SkyPilotConnector, SkyPilotMetadata
from flytekitplugins.skypilot.connector import TASK_TYPE, TASK_TYPE_VERSION
from tests.support import fake_runtime, prepare, run
from tests.test_flyte_contract import square

METAS = Path(__file__).parent / "data" / "metas"
SAMPLES = sorted(METAS.glob("*.json"))


def test_the_frozen_samples_cover_each_kind_of_task():
    assert {p.stem for p in SAMPLES} >= {"plain_task", "yaml_task_with_outputs", "batch_subtask", "pool_task"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_a_meta_of_the_previous_release_decodes_to_the_same_fields(path):
    written = path.read_bytes()
    meta = SkyPilotMetadata.decode(written)
    assert json.loads(meta.encode()) == json.loads(written)  # nothing lost, nothing defaulted over


def test_the_samples_keep_what_get_and_delete_need():
    batch = SkyPilotMetadata.decode((METAS / "batch_subtask.json").read_bytes())
    assert batch.batch_rank == 3 and batch.num_nodes == 1
    pool = SkyPilotMetadata.decode((METAS / "pool_task.json").read_bytes())
    assert pool.cluster_name == "team-a100" and pool.request_id == ""
    yaml_task = SkyPilotMetadata.decode((METAS / "yaml_task_with_outputs.json").read_bytes())
    assert yaml_task.outputs["model"] == "file" and yaml_task.num_nodes == 2


def test_a_meta_of_a_later_release_decodes_its_extra_fields_ignored():
    later = {
        **json.loads((METAS / "plain_task.json").read_bytes()),
        "schema_version": 2,
        "infra": "k8s/gke-a",
        "relaunches": {"count": 1, "reasons": ["FAILED_NO_RESOURCE"]},
    }
    meta = SkyPilotMetadata.decode(json.dumps(later).encode())
    assert meta == SkyPilotMetadata.decode((METAS / "plain_task.json").read_bytes())


def test_a_meta_written_before_fields_existed_takes_their_defaults():
    meta = SkyPilotMetadata.decode(b'{"job_name": "flyte-j", "request_id": "r", "batch_rank": null}')
    assert meta == SkyPilotMetadata("flyte-j", "r", "", "", 1, {}, "", [], -1)


@pytest.mark.parametrize(
    "data, names",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'["flyte-j"]', "JSON list"),
        (b'{"request_id": "r"}', "'job_name'"),
        (b'{"job_name": ""}', "'job_name'"),
        (b'{"job_name": "j", "batch_rank": "0"}', "'batch_rank' must be an integer, not str '0'"),
        (b'{"job_name": "j", "num_nodes": true}', "'num_nodes' must be an integer"),
        (b'{"job_name": "j", "num_nodes": 2.0}', "'num_nodes' must be an integer"),
        (b'{"job_name": 7}', "'job_name' must be a string"),
        (b'{"job_name": "j", "outputs": {"score": 1}}', "'outputs' must be an object of strings"),
        (b'{"job_name": "j", "secrets": "HF_TOKEN"}', "'secrets' must be a list of strings"),
    ],
)
def test_a_broken_meta_is_refused_naming_the_field(data, names):
    with pytest.raises(ValueError, match="SkyPilot resource meta") as refused:
        SkyPilotMetadata.decode(data)
    assert names in str(refused.value)


class Context:
    """What a gRPC servicer is told to answer."""

    code = details = None

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details


@pytest.mark.parametrize("call, request_type", [("GetTask", GetTaskRequest), ("DeleteTask", DeleteTaskRequest)])
def test_flytes_get_and_delete_of_a_broken_meta_answer_an_error_naming_the_field(call, request_type):
    category = TaskCategory(name=TASK_TYPE, version=TASK_TYPE_VERSION)
    request = request_type(task_category=category, resource_meta=b'{"job_name": "flyte-j", "batch_rank": "0"}')
    context = Context()
    answer = run(getattr(AsyncConnectorService(), call)(request, context))
    assert answer is None and context.code == grpc.StatusCode.INTERNAL
    assert "'batch_rank' must be an integer" in context.details


def test_get_and_delete_of_a_later_releases_meta_work(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server))
    template, prefix, metadata = prepare(square, {"i": 3})
    written = json.loads(run(conn.create(template, prefix, None, metadata)).encode())
    meta = SkyPilotMetadata.decode(json.dumps({**written, "schema_version": 2, "infra": "k8s"}).encode())
    resource = run(conn.get(meta))
    assert resource.phase in (TaskExecution.QUEUED, TaskExecution.INITIALIZING, TaskExecution.RUNNING)
    run(conn.delete(meta))
    assert (meta.job_name, -1) in conn.runtime.aborted


def test_get_and_delete_of_a_meta_with_only_its_job_name_answer_without_raising():
    server = FakeApiServer(launch_seconds=0.1, latency=NO_LATENCY)
    conn = SkyPilotConnector(runtime=fake_runtime(server))
    meta = SkyPilotMetadata.decode(b'{"job_name": "flyte-e0-n0-0-0123456789"}')
    resource = run(conn.get(meta))
    # no request, no job of that name: a launch that never happened, which a retry makes
    assert resource.phase == TaskExecution.RETRYABLE_FAILED and "a retry launches it" in resource.message
    run(conn.delete(meta))  # nothing of that name to cancel: done
