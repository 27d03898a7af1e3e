"""The (task type, version) of each kind of SkyPilot template this release serialises, from flytekit's own
serialisation (what `pyflyte register` sends): a function task, a map_task's subtask, a YAML task; and version 0,
the templates of earlier releases."""

from collections import OrderedDict
from typing import List

from flytekit import map_task, task, workflow
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilot, SkyPilotYamlTask

from .routing import Kind


@task(task_config=SkyPilot(cpus="1+"), container_image="ghcr.io/acme/train:1")
def double(i: int) -> int:
    return 2 * i


@workflow
def fan_out(items: List[int]) -> List[int]:
    return map_task(double)(i=items)


def templates() -> dict:
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    entities: dict = OrderedDict()
    get_serializable(entities, settings, fan_out)
    [subtask] = [e.template for k, e in entities.items() if type(k).__name__ == "ArrayNodeMapTask"]
    plain = get_serializable(OrderedDict(), settings, double).template
    yaml_task = get_serializable(OrderedDict(), settings, SkyPilotYamlTask(name="y", task={"run": "true"})).template
    return {"function task": plain, "map_task subtask": subtask, "YAML task": yaml_task}


def kinds() -> List[Kind]:
    serialised = templates()
    earlier = Kind("templates registered with an earlier release", (serialised["function task"].type, 0), False)
    return [Kind(label, (t.type, t.task_type_version)) for label, t in serialised.items()] + [earlier]
