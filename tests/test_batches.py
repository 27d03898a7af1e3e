"""Which subtasks share a launch, and how one job of a batch runs the command of its own subtask."""

import importlib
import subprocess
from collections import OrderedDict
from pathlib import Path

from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extend.backend.base_connector import ConnectorRegistry
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilotConnector, batches
from flytekitplugins.skypilot.runtime import Runtime
from flytekitplugins.skypilot.settings import ConnectorSettings
from tests.support import execution_metadata

CONFIG = {
    "name": "flyte-e1-n0-0-0-abc",
    "run": "pyflyte-execute --inputs s3://b/0/inputs.pb",
    "resources": {"infra": "slurm", "cpus": "1+"},
    "envs": {"FLYTE_FAIL_ON_ERROR": "true"},
}


def test_subtasks_of_one_fan_out_share_a_batch_and_a_retry_starts_another():
    first = batches.batch_key(execution_metadata("e1", "n0-0-0", 0), CONFIG)
    sibling = batches.batch_key(
        execution_metadata("e1", "n0-0-1", 0),
        {**CONFIG, "name": "flyte-e1-n0-0-1-def", "run": "pyflyte-execute --inputs s3://b/1"},
    )
    assert first is not None and first == sibling  # only the command (and job name) differ
    assert batches.batch_key(execution_metadata("e1", "n0-0-0", 1), CONFIG) != first  # a retry: a new attempt
    assert batches.batch_key(execution_metadata("e2", "n0-0-0", 0), CONFIG) != first  # another execution
    assert batches.batch_key(execution_metadata("e1", "n0-0-2", 0), {**CONFIG, "envs": {"X": "1"}}) != first


def test_what_launches_alone():
    assert batches.batch_key(None, CONFIG) is None  # a local run creates one subtask at a time
    assert batches.batch_key(execution_metadata("e1", "n0", 0), {**CONFIG, "num_nodes": 2}) is None
    assert Runtime(ConnectorSettings()).batches.key(execution_metadata("e1", "n0", 0), CONFIG) is not None
    off = Runtime(ConnectorSettings(batch_window=0))  # batching turned off
    assert off.batches.key(execution_metadata("e1", "n0", 0), CONFIG) is None


def test_each_job_of_a_batch_runs_the_command_of_its_rank():
    script = batches.rank_dispatch(["echo first", "echo 'second one'", "echo third"])
    for rank, said in [("0", "first"), ("1", "second one"), ("2", "third")]:
        out = subprocess.run(["bash", "-c", script], env={"SKYPILOT_JOB_RANK": rank}, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout == f"{said}\n", out
    out = subprocess.run(["bash", "-c", script], env={"SKYPILOT_JOB_RANK": "3"}, capture_output=True, text=True)
    assert out.returncode == 1 and "no Flyte subtask for SKYPILOT_JOB_RANK=3" in out.stderr


def test_map_task_subtasks_reach_the_connector(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    example = importlib.import_module("batch_inference")
    entities = OrderedDict()
    get_serializable(
        entities, SerializationSettings(image_config=ImageConfig.auto_default_image()), example.batch_inference_wf
    )
    [subtask] = [e.template for k, e in entities.items() if type(k).__name__ == "ArrayNodeMapTask"]
    # propeller asks for the connector of the subtask template's type and version
    connector = ConnectorRegistry.get_connector(subtask.type, subtask.task_type_version)
    assert isinstance(connector, SkyPilotConnector) and subtask.task_type_version == 1
    # one runtime (one tracker, one polling round) for both registrations
    assert connector.runtime is ConnectorRegistry.get_connector(subtask.type, 0).runtime
