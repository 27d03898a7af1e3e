"""Which connector flytepropeller routes SkyPilot tasks to, computed as flytepropeller does from this
connector's ListAgents answer and the propeller configuration we ship (agent_service/propeller-config.yaml).

Flyte 1.16 (flyteplugins/go/tasks/plugins/webapi/connector): `client.go` `updateRegistry` fills
`registry[name] = map[int32]*Connector{version: connector}` for each supported task category in turn, so one
version per task type survives (the last listed); `getConnectorRegistry` then adds `connectorForTaskTypes`
entries at version 0 only where the name is missing; `plugin.go` `getFinalConnector` looks up
`registry[template.type][template.task_type_version]` and falls back to `defaultConnector`. Newer Flyte keys the
registry by (name, version) (`RegistryKey`)."""

from collections import OrderedDict
from pathlib import Path

import yaml
from flytekit import map_task, task, workflow
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extend.backend.base_connector import ConnectorRegistry
from flytekit.tools.translator import get_serializable

from flytekitplugins.skypilot import SkyPilot, SkyPilotYamlTask  # registers the connector too

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "agent_service" / "propeller-config.yaml").read_text())
CONNECTOR_SERVICE = CONFIG["plugins"]["connector-service"]
DEFAULT = "defaultConnector"


def list_agents():
    """(name, version) of every task category the connector process lists, in ListAgents order."""
    return [
        (c.name, c.version) for agent in ConnectorRegistry.list_connectors() for c in agent.supported_task_categories
    ]


def registry_1_16(deployment: str):
    registry = {}
    for name, version in list_agents():  # updateRegistry: the inner map is replaced per category
        registry[name] = {version: deployment}
    for task_type, dep in CONNECTOR_SERVICE.get("connectorForTaskTypes", {}).items():
        if dep in CONNECTOR_SERVICE["connectors"] and task_type not in registry:
            registry[task_type] = {0: dep}
    return registry


def route_1_16(template) -> str:
    """plugin.go getFinalConnector (1.16)."""
    [deployment] = CONNECTOR_SERVICE["connectors"]
    return registry_1_16(deployment).get(template.type, {}).get(template.task_type_version, DEFAULT)


def route_keyed(template) -> str:
    """Newer Flyte: the registry keyed by (task type, version)."""
    [deployment] = CONNECTOR_SERVICE["connectors"]
    registry = {key: deployment for key in list_agents()}
    for task_type, dep in CONNECTOR_SERVICE.get("connectorForTaskTypes", {}).items():
        registry.setdefault((task_type, 0), dep)
    return registry.get((template.type, template.task_type_version), DEFAULT)


@task(task_config=SkyPilot(cpus="1+"), container_image="ghcr.io/acme/train:1")
def double(i: int) -> int:
    return 2 * i


@workflow
def fan_out(items: list[int]) -> list[int]:
    return map_task(double)(i=items)


def templates():
    entities = OrderedDict()
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    get_serializable(entities, settings, fan_out)
    [subtask] = [e.template for k, e in entities.items() if type(k).__name__ == "ArrayNodeMapTask"]
    plain = get_serializable(OrderedDict(), settings, double).template
    yaml_task = get_serializable(OrderedDict(), settings, SkyPilotYamlTask(name="y", task={"run": "true"})).template
    return {"task": plain, "map subtask": subtask, "yaml task": yaml_task}


def test_tasks_and_map_subtasks_reach_the_connector_under_flyte_1_16_and_later():
    for what, template in templates().items():
        assert route_1_16(template) == "skypilot-connector", what
        assert route_keyed(template) == "skypilot-connector", what


def test_the_served_version_is_the_one_1_16_keeps():
    assert list_agents()[-1] == ("skypilot", 1)  # 1.16 keeps the last one listed
    assert {t.task_type_version for t in templates().values()} == {1}
