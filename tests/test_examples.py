"""Every example's SkyPilot tasks serialise and translate into a valid sky.Task."""

import importlib
from pathlib import Path

import pytest
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.models.task import TaskTemplate
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilotFunctionTask, SkyPilotYamlTask
from flytekitplugins.skypilot.translate import sky_task, task_yaml

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_tasks_translate(path, monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SKYPILOT_SHARED_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(path.parent))  # as `pyflyte run` does from examples/
    module = importlib.import_module(path.stem)
    tasks = [v for v in vars(module).values() if isinstance(v, (SkyPilotFunctionTask, SkyPilotYamlTask))]
    assert tasks, f"{path.name} declares no SkyPilot task"
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    for t in tasks:
        template = TaskTemplate.from_flyte_idl(get_serializable({}, settings, t).template.to_flyte_idl())
        names = template.custom.get("secrets") or []
        built = sky_task(task_yaml(template, "example", {n: "value" for n in names}, None, str(tmp_path)))
        if isinstance(t, SkyPilotYamlTask):
            assert built.run == template.custom["task"]["run"]  # the YAML's own command, unchanged
            continue
        assert (
            ("exec pyflyte-execute " in built.run)
            if t.task_config.num_nodes > 1
            else (built.run.startswith("pyflyte-execute "))
        )
        assert built.num_nodes == t.task_config.num_nodes
