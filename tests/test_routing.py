"""Where flytepropeller sends each kind of SkyPilot template, with the configuration we ship, computed as
propeller computes it (agent_service/routing.py: flytepropeller v1.16.8 `getConnectorRegistry`,
`getFinalConnector`, `ResolvePlugin`; the v2.0.43 keyed registry; each cited with file and lines there) from the
connector's own ListAgents answer and the templates flytekit serialises.

Shipped: agent_service/propeller-config.yaml (propeller's own configuration, for the connector's own deployment)
and agent_service/helm/*.yaml (values for the flyte-binary and flyte-core charts, rendered as the charts at
v1.16.8 render them: tests/support/flyte_charts.py), for the connector's own deployment and for Flyte's own
`flyteconnector` deployment running this plugin."""

import asyncio
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flyteidl.admin.agent_pb2 import ListAgentsRequest
from flytekit.extend.backend.connector_service import ConnectorMetadataService

from agent_service import routing
from agent_service.routing import DEFAULT, Agent, Listing
from agent_service.template_kinds import kinds, templates
from tests.support import flyte_charts

ROOT = Path(__file__).resolve().parents[1]
OWN = "skypilot-connector"
FLYTECONNECTOR = "k8s://flyteconnector.flyte:8000"


def list_agents() -> Listing:
    """The connector process's real ListAgents answer (flytekit's metadata servicer, this plugin installed)."""
    answer = asyncio.run(ConnectorMetadataService().ListAgents(ListAgentsRequest(), None))
    return routing.listing_of(answer.agents)


def shipped(name: str) -> dict:
    return yaml.safe_load((ROOT / "agent_service" / name).read_text())


def config_of(files: dict) -> dict:
    cfg: dict = {}
    for name in sorted(files):  # propeller globs its config directory
        cfg = routing.merge(cfg, files[name])
    return cfg


def configuration(chart, values_file: str, more: dict) -> dict:
    """Propeller's merged configuration: our file as it is, or as the chart renders our values (plus `more` of
    the user's own)."""
    if chart is None:
        return config_of({"config.yaml": shipped(values_file)})
    return config_of(chart({**shipped(values_file), **more}))


BINARY, CORE, ON = flyte_charts.flyte_binary, flyte_charts.flyte_core, {"flyteconnector": {"enabled": True}}
# (the chart or None, our file, the user's own values, which deployment is this connector, v0 templates reach it)
SHIPPED = {
    "propeller-config.yaml": (None, "propeller-config.yaml", {}, OWN, False),
    "helm/flyte-binary.yaml": (BINARY, "helm/flyte-binary.yaml", {}, OWN, False),
    "helm/flyte-binary.yaml beside flyteconnector": (BINARY, "helm/flyte-binary.yaml", ON, OWN, False),
    "helm/flyte-binary-flyteconnector.yaml": (BINARY, "helm/flyte-binary-flyteconnector.yaml", {}, DEFAULT, True),
    "helm/flyte-core.yaml": (CORE, "helm/flyte-core.yaml", {}, OWN, False),
    "helm/flyte-core.yaml beside flyteconnector": (CORE, "helm/flyte-core.yaml", ON, OWN, False),
    "helm/flyte-core-flyteconnector.yaml": (CORE, "helm/flyte-core-flyteconnector.yaml", {}, DEFAULT, True),
}


def test_every_template_kind_is_version_1_and_listed_last():
    assert {t.task_type_version for t in templates().values()} == {1}
    assert {k.category for k in kinds() if k.required} == {("skypilot", 1)}
    ours = [c for c in list_agents().categories() if c[0] == "skypilot"]
    assert ours == [("skypilot", 0), ("skypilot", 1)]  # 1.16 keeps the last one listed for a name


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_configuration_routes_every_template_kind_to_the_connector(name):
    chart, values_file, more, served, earlier_routed = SHIPPED[name]
    cfg, ours = configuration(chart, values_file, more), list_agents()
    if served == DEFAULT:
        assert routing.endpoints(cfg)[DEFAULT] == FLYTECONNECTOR
    listings = {d: (ours if d == served else Listing()) for d in routing.endpoints(cfg)}
    for kind in kinds():
        expected = [served] if kind.required or earlier_routed else [DEFAULT]
        assert routing.outcomes_1_16(cfg, listings, kind.category) == expected, (kind, "1.16")
        assert routing.outcomes_v2(cfg, listings, kind.category) == [served], (kind, "v2")
        registry = routing.registry_1_16(cfg, listings, list(listings))
        assert routing.plugin_1_16(cfg, registry, registry, "skypilot") == routing.PLUGIN
    seen, problems = routing.judge(cfg, [served], ours, kinds())
    assert [p for p in problems if not p.startswith("ADVICE")] == [], problems
    assert any("re-register" in p for p in problems) == (not earlier_routed)  # the upgrade note, where needed
    assert len(seen) == len(kinds())


def _own() -> dict:
    return copy.deepcopy(shipped("propeller-config.yaml"))


def _with(change) -> dict:
    cfg = _own()
    change(cfg)
    return routing.merge({}, cfg)


SECTION = ("plugins", "connector-service")
BREAKS = {
    # the configuration this project shipped before: every version-1 template went to an empty defaultConnector
    "connectorForTaskTypes.skypilot": lambda c: c["plugins"]["connector-service"].update(
        connectorForTaskTypes={"skypilot": OWN}
    ),
    "supportedTaskTypes": lambda c: c["plugins"]["connector-service"].pop("supportedTaskTypes"),
    "enabled-plugins": lambda c: c["tasks"]["task-plugins"]["enabled-plugins"].remove("connector-service"),
    "default-for-task-types.skypilot": lambda c: c["tasks"]["task-plugins"]["default-for-task-types"].update(
        skypilot="container"
    ),
    "connectors": lambda c: c["plugins"]["connector-service"].pop("connectors"),
}


@pytest.mark.parametrize("key", list(BREAKS))
def test_a_configuration_that_breaks_routing_is_named_with_its_key(key):
    seen, problems = routing.judge(_with(BREAKS[key]), [OWN], list_agents(), kinds())
    failures = [p for p in problems if not p.startswith("ADVICE")]
    assert failures and all(key.split(".")[0] in p for p in failures), failures


def test_another_deployment_listing_skypilot_makes_routing_depend_on_go_map_order():
    cfg = _with(lambda c: c["plugins"]["connector-service"]["connectors"].update(other={"endpoint": "dns:///o:8000"}))
    listings = {OWN: list_agents(), "other": list_agents()}
    assert sorted(routing.outcomes_1_16(cfg, listings, ("skypilot", 1))) == sorted([OWN, "other"])


# ---- the model itself, on answers written by hand: propeller's rules, each one observable ------------------


def test_1_16_keeps_one_version_per_name_the_last_listed():
    cfg = routing.merge({}, {"plugins": {"connector-service": {"connectors": {"c": {"endpoint": "e"}}}}})
    both = {"c": Listing((Agent(("t",), (("t", 0), ("t", 1))),))}
    registry = routing.registry_1_16(cfg, both, ["c"])
    assert registry["t"] == {1: "c"}
    assert routing.final_connector_1_16(registry, ("t", 0)) == DEFAULT
    reversed_ = {"c": Listing((Agent((), (("t", 1), ("t", 0))),))}
    assert routing.registry_1_16(cfg, reversed_, ["c"])["t"] == {0: "c"}
    # the v2 backend keys by (name, version): both survive
    keyed = routing.registry_v2(cfg, both, ["c"])
    assert keyed[("", "", "t", 0)] == keyed[("", "", "t", 1)] == "c"


def test_1_16_connector_for_task_types_replaces_and_supported_task_types_only_adds():
    section = {
        "connectors": {"c": {"endpoint": "e"}},
        "connectorForTaskTypes": {"t": "c"},
        "supportedTaskTypes": ["t", "u"],
    }
    cfg = routing.merge({}, {"plugins": {"connector-service": section}})
    registry = routing.registry_1_16(cfg, {"c": Listing((Agent((), (("t", 1),)),))}, ["c"])
    assert registry == {"t": {0: "c"}, "u": {0: DEFAULT}}


def test_1_16_resolves_a_type_no_registry_names_to_the_container_plugin():
    cfg = routing.merge({}, {"tasks": {"task-plugins": {"enabled-plugins": ["container", "connector-service"]}}})
    assert routing.plugin_1_16(cfg, {}, {"t": {1: "c"}}, "t") == routing.PLUGIN
    assert routing.plugin_1_16(cfg, {"t": {1: "c"}}, {}, "t") == "container"  # the registry lost it since
    pinned = routing.merge(cfg, {"tasks": {"task-plugins": {"default-for-task-types": {"t": "connector-service"}}}})
    assert routing.plugin_1_16(pinned, {"t": {1: "c"}}, {}, "t") == routing.PLUGIN  # registered at start-up


def test_v2_looks_up_project_domain_then_domain_then_everywhere():
    section = {"connectors": {"p": {"endpoint": "e1", "project": "p1", "domain": "d"}, "all": {"endpoint": "e2"}}}
    cfg = routing.merge({}, {"plugins": {"connector-service": section}})
    listing = Listing((Agent((), (("t", 1),)),))
    registry = routing.registry_v2(cfg, {"p": listing, "all": listing}, ["p", "all"])
    assert routing.final_connector_v2(cfg, registry, ("t", 1), "p1", "d") == "p"
    assert routing.final_connector_v2(cfg, registry, ("t", 1), "p2", "d") == "all"
    assert routing.final_connector_v2(cfg, registry, ("t", 2)) == "none"  # no defaultConnector: the call fails


def test_propeller_config_files_merge_map_by_map_case_insensitively():
    a = {"plugins": {"connector-service": {"defaultConnector": {"endpoint": "x"}, "supportedTaskTypes": ["a"]}}}
    b = {"plugins": {"Connector-Service": {"connectors": {"c": {"endpoint": "y"}}, "supportedTaskTypes": ["b"]}}}
    cfg = config_of({"1.yaml": a, "2.yaml": b})
    assert routing.endpoints(cfg) == {DEFAULT: "x", "c": "y"}
    assert routing.connector_service(cfg)["supportedtasktypes"] == ["b"]


# ---- the preflight says it, from propeller's ConfigMap --------------------------------------------------------


def _configmap(tmp_path: Path, cfg: dict) -> str:
    path = tmp_path / "flyte-propeller-config.yaml"
    data = {
        "enabled_plugins.yaml": yaml.safe_dump({"tasks": cfg["tasks"]}),
        "connector.yaml": yaml.safe_dump({"plugins": cfg["plugins"]}),
    }
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "data": data}))
    return str(path)


def _preflight(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "agent_service.preflight", "--routing-only", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_preflight_passes_the_shipped_configmap_and_names_the_key_that_breaks_it(tmp_path):
    good = _preflight("--propeller-config", _configmap(tmp_path, _own()))
    assert good.returncode == 0, good.stdout + good.stderr
    assert (
        "PASS  propeller routes" in good.stdout
        and "function task (skypilot v1): 1.16 -> skypilot-connector" in good.stdout
    )
    assert "re-register" in good.stdout  # an earlier release's templates: the upgrade note
    bad = _own()
    BREAKS["connectorForTaskTypes.skypilot"](bad)
    broken = _preflight("--propeller-config", _configmap(tmp_path, bad))
    assert broken.returncode == 1 and "FAIL  propeller routes" in broken.stdout
    assert "remove plugins.connector-service.connectorForTaskTypes.skypilot" in broken.stdout


def test_preflight_reads_a_flyteconnector_deployment_as_this_connector(tmp_path):
    files = flyte_charts.flyte_binary(shipped("helm/flyte-binary-flyteconnector.yaml"))
    paths = []
    for name, content in sorted(files.items()):
        (tmp_path / name).write_text(yaml.safe_dump(content))
        paths += ["--propeller-config", str(tmp_path / name)]
    result = _preflight(*paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "taking defaultConnector as this connector" in result.stdout and "re-register" not in result.stdout
