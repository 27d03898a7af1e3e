"""Where flytepropeller sends a SkyPilot task template, computed as propeller computes it: from its configuration
and the connectors' ListAgents answers. Used by the preflight (`--propeller-config`) and tests/test_routing.py.

Read at the release tags of flyteorg/flyte (`git show <tag>:<path>`):

Flyte 1.16 (tag v1.16.8; both functions are byte-identical in every v1.16.0-v1.16.8 tag):
- flyteplugins/go/tasks/plugins/webapi/connector/client.go `getConnectorRegistry` (lines 94-170): for each
  deployment (defaultConnector first, if it has an endpoint, then `connectors`, a Go map: any order), for each
  agent of its ListAgents answer, each deprecated `supported_task_types` entry sets `registry[name] = {0: dep}`
  and each `supported_task_categories` entry sets `registry[name] = {version: dep}`: every assignment replaces
  the name's whole map, so one version per name survives. A deployment whose ListAgents fails is skipped. Then
  every `connectorForTaskTypes` entry replaces `registry[name]` with `{0: dep}`; then each `supportedTaskTypes`
  name (default `task_type_3`, `task_type_4`: config.go) still missing gets `{0: defaultConnector}`.
- plugin.go `getFinalConnector` (lines 401-409): `registry[type][version]`, else `defaultConnector` (an empty
  endpoint when none is configured: every call fails). `watchConnectors` (390-399) rebuilds the registry every
  `pollInterval` (10 s) and hands its names to `ConnectorService.SetSupportedTaskType`.
- flytepropeller/pkg/controller/nodes/task/handler.go `Setup` (lines 275-371) and `ResolvePlugin` (382-426): a
  task type goes to `default-for-task-types`' plugin only if that plugin registered the type at start-up (the
  connector plugin registers the registry's names as they were then: plugin.go `newConnectorPlugin`, 447-472);
  else to the connector plugin while the current registry names it (`ContainTaskType`); else to the default
  plugin, `container` (flyteplugins/go/tasks/plugins/k8s/pod/plugin.go `init`, `IsDefault: true`): the template
  then runs as a plain pod in Flyte's own cluster.

Flyte's v2 backend (tag v2.0.43): client.go `updateRegistry` (163-216) and `getConnectorRegistry` (218-266) key
the registry by (project, domain, task type, version), from each deployment's `ListConnectors` (flyteidl2; the
same task categories); `connectorForTaskTypes` then sets (name, 0), `supportedTaskTypes` adds (name, 0) where
missing, then `connectorApps`. plugin.go `getFinalConnector` (400-437) tries (project, domain), ("", domain),
("", "") and falls back to `defaultConnector`, or fails when it has no endpoint.

Propeller's configuration is every file of its config directory (sorted: flytestdlib/config/files/finder.go
`FindConfigFiles`, `filepath.Glob`) merged by viper (flytestdlib/config/viper/collection.go `MergeAllConfigs`):
maps merged key by key, anything else replaced by the later file, keys compared case-insensitively.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

DEFAULT = "defaultConnector"
PLUGIN = "connector-service"
SUPPORTED_TASK_TYPES_DEFAULT = ["task_type_3", "task_type_4"]  # connector/config.go defaultConfig (v1.16.8, v2.0.43)

Category = Tuple[str, int]  # (task type name, task type version)


@dataclass(frozen=True)
class Agent:
    """One agent of a ListAgents answer: its deprecated task types and its task categories, in the order listed."""

    task_types: Tuple[str, ...] = ()
    categories: Tuple[Category, ...] = ()


@dataclass(frozen=True)
class Listing:
    """One deployment's ListAgents (v2: ListConnectors) answer."""

    agents: Tuple[Agent, ...] = ()

    def categories(self) -> List[Category]:
        return [c for agent in self.agents for c in agent.categories]


# ---- propeller's configuration ------------------------------------------------------------------------------


def merge(base: dict, later: dict) -> dict:
    """viper's merge: maps key by key (keys lower-cased), anything else replaced."""
    out = {str(k).lower(): v for k, v in base.items()}
    for key, value in later.items():
        key = str(key).lower()
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _lower(value)
    return out


def _lower(value):
    return {str(k).lower(): _lower(v) for k, v in value.items()} if isinstance(value, dict) else value


def documents(text: str) -> List[dict]:
    """A propeller config file, or a ConfigMap holding them (its data entries in file-name order)."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("not a YAML mapping: expected propeller's configuration or its ConfigMap")
    if doc.get("kind") == "ConfigMap":
        return [yaml.safe_load(doc["data"][name]) or {} for name in sorted(doc.get("data") or {})]
    return [doc]


def load(paths: Iterable[str]) -> dict:
    """Propeller's merged configuration from files (or ConfigMaps), in the order given."""
    cfg: dict = {}
    for path in paths:
        for doc in documents(Path(path).read_text()):
            cfg = merge(cfg, doc)
    return cfg


def connector_service(cfg: dict) -> dict:
    return (cfg.get("plugins") or {}).get(PLUGIN) or {}


def endpoints(cfg: dict) -> Dict[str, str]:
    """Deployment id -> endpoint: defaultConnector (if it has an endpoint), then `connectors`."""
    section = connector_service(cfg)
    out = {}
    if (section.get("defaultconnector") or {}).get("endpoint"):
        out[DEFAULT] = section["defaultconnector"]["endpoint"]
    for name, deployment in (section.get("connectors") or {}).items():
        out[name] = (deployment or {}).get("endpoint", "")
    return out


def _answers(cfg: dict, listings: Dict[str, Optional[Listing]], order: Sequence[str]):
    """(deployment, its answer) as both registries visit them: defaultConnector first (if it has an endpoint),
    then `connectors` in `order`; a deployment whose metadata call failed (None) is skipped."""
    for deployment in ([DEFAULT] if DEFAULT in endpoints(cfg) else []) + list(order):
        if listings.get(deployment) is not None:
            yield deployment, listings[deployment]


# ---- Flyte 1.16 ---------------------------------------------------------------------------------------------


def registry_1_16(cfg: dict, listings: Dict[str, Optional[Listing]], order: Sequence[str]) -> Dict[str, dict]:
    """client.go getConnectorRegistry at v1.16.8, visiting `connectors` in `order` (Go map order is random)."""
    section = connector_service(cfg)
    connectors = section.get("connectors") or {}
    registry: Dict[str, Dict[int, str]] = {}
    for deployment, listing in _answers(cfg, listings, order):
        for agent in listing.agents:
            for name in agent.task_types:
                registry[name] = {0: deployment}
            for name, version in agent.categories:
                registry[name] = {version: deployment}
    for task_type, deployment in (section.get("connectorfortasktypes") or {}).items():
        if deployment in connectors:
            registry[task_type] = {0: deployment}
    for task_type in section.get("supportedtasktypes", SUPPORTED_TASK_TYPES_DEFAULT) or []:
        registry.setdefault(task_type, {0: DEFAULT})
    return registry


def final_connector_1_16(registry: Dict[str, dict], category: Category) -> str:
    """plugin.go getFinalConnector at v1.16.8."""
    name, version = category
    return registry.get(name, {}).get(version, DEFAULT)


def task_plugins(cfg: dict) -> dict:
    return (cfg.get("tasks") or {}).get("task-plugins") or {}


def enabled(cfg: dict, plugin: str) -> bool:
    """config.go GetEnabledPlugins: an empty enabled-plugins list enables every plugin."""
    names = [str(p).lower() for p in task_plugins(cfg).get("enabled-plugins") or []]
    return not names or plugin in names


def plugin_1_16(cfg: dict, at_start: Dict[str, dict], now: Dict[str, dict], task_type: str) -> str:
    """handler.go ResolvePlugin at v1.16.8 (no per-workflow plugin overrides): the plugin that gets the task."""
    chosen = (task_plugins(cfg).get("default-for-task-types") or {}).get(task_type)
    if enabled(cfg, PLUGIN) and chosen in (None, PLUGIN):
        if (chosen == PLUGIN and task_type in at_start) or task_type in now:
            return PLUGIN
    if chosen and chosen != PLUGIN and enabled(cfg, chosen):
        return chosen
    return "container" if enabled(cfg, "container") else "none"


def _orders(cfg: dict) -> Iterable[Sequence[str]]:
    """Every order propeller may visit `connectors` in (a Go map)."""
    names = list(connector_service(cfg).get("connectors") or {})
    return itertools.permutations(names) if len(names) <= 6 else [names]


def outcomes_1_16(cfg: dict, listings: Dict[str, Optional[Listing]], category: Category) -> List[str]:
    """Every deployment 1.16 may send the template to, over every order of `connectors`."""
    seen = (final_connector_1_16(registry_1_16(cfg, listings, order), category) for order in _orders(cfg))
    return list(dict.fromkeys(seen))


# ---- Flyte's v2 backend -------------------------------------------------------------------------------------


def registry_v2(
    cfg: dict, listings: Dict[str, Optional[Listing]], order: Sequence[str]
) -> Dict[Tuple[str, str, str, int], str]:
    """client.go getConnectorRegistry at v2.0.43 (ListConnectors answers in `listings`; connector apps left out)."""
    section = connector_service(cfg)
    connectors = section.get("connectors") or {}
    scope = {DEFAULT: section.get("defaultconnector") or {}, **connectors}
    registry: Dict[Tuple[str, str, str, int], str] = {}
    for deployment, listing in _answers(cfg, listings, order):
        project, domain = (scope[deployment] or {}).get("project", ""), (scope[deployment] or {}).get("domain", "")
        for name, version in listing.categories():
            registry[(project, domain, name, version)] = deployment
    for task_type, deployment in (section.get("connectorfortasktypes") or {}).items():
        if deployment in connectors:
            d = connectors[deployment] or {}
            registry[(d.get("project", ""), d.get("domain", ""), task_type, 0)] = deployment
    default = section.get("defaultconnector") or {}
    for task_type in section.get("supportedtasktypes", SUPPORTED_TASK_TYPES_DEFAULT) or []:
        registry.setdefault((default.get("project", ""), default.get("domain", ""), task_type, 0), DEFAULT)
    return registry


def final_connector_v2(cfg: dict, registry: dict, category: Category, project: str = "", domain: str = "") -> str:
    """plugin.go getFinalConnector at v2.0.43."""
    name, version = category
    for key in ((project, domain), ("", domain), ("", "")):
        if (*key, name, version) in registry:
            return registry[(*key, name, version)]
    return DEFAULT if DEFAULT in endpoints(cfg) else "none"


def outcomes_v2(cfg: dict, listings: Dict[str, Optional[Listing]], category: Category) -> List[str]:
    """Every deployment the v2 backend may send the template to, over every order of `connectors`."""
    seen = (final_connector_v2(cfg, registry_v2(cfg, listings, order), category) for order in _orders(cfg))
    return list(dict.fromkeys(seen))


# ---- what a platform engineer needs to know -----------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    label: str
    category: Category
    required: bool = True  # an earlier release's templates are advisory: re-registering fixes them


def listing_of(agents) -> Listing:
    """A Listing from ListAgents' `Agent` messages (flyteidl.admin.agent_pb2), in the order answered."""
    return Listing(
        tuple(
            Agent(tuple(a.supported_task_types), tuple((c.name, c.version) for c in a.supported_task_categories))
            for a in agents
        )
    )


def _where(cfg: dict, targets: List[str]) -> str:
    known = endpoints(cfg)
    return " or ".join(f"{t} ({known[t]})" if known.get(t) else f"{t} (no endpoint: every call fails)" for t in targets)


def judge(cfg: dict, served_by: Sequence[str], ours: Listing, kinds: Sequence[Kind]) -> Tuple[List[str], List[str]]:
    """(what propeller does with each template kind, the problems with their fixes), under 1.16 and v2.
    Advice (an earlier release's templates) starts with ADVICE; anything else is a failure."""
    up = {d: (ours if d in served_by else Listing()) for d in endpoints(cfg)}
    registry = registry_1_16(cfg, up, list(connector_service(cfg).get("connectors") or {}))
    seen, problems = [], []
    for kind in kinds:
        v1, v2 = outcomes_1_16(cfg, up, kind.category), outcomes_v2(cfg, up, kind.category)
        plugin = plugin_1_16(cfg, registry, registry, kind.category[0])
        name, version = kind.category
        if plugin == PLUGIN:
            seen.append(f"{kind.label} ({name} v{version}): 1.16 -> {_where(cfg, v1)}; v2 -> {_where(cfg, v2)}")
        else:
            seen.append(f"{kind.label} ({name} v{version}): 1.16 runs it with the {plugin} plugin")
        if not kind.required:
            if set(v1) - set(served_by):
                problems.append(
                    f"ADVICE {kind.label} reach {_where(cfg, v1)} under 1.16: re-register such workflows "
                    "with this release (`pyflyte register`), whose templates carry version 1"
                )
            continue
        if plugin != PLUGIN:
            problems.append(_plugin_fix(cfg, name, plugin))
        elif set(v1) - set(served_by):
            problems.append(_route_fix(cfg, kind, v1, served_by))
        if set(v2) - set(served_by):
            problems.append("under Flyte's v2 backend, " + _route_fix(cfg, kind, v2, served_by))
        if plugin == PLUGIN:
            problems += _while_unlisted(cfg, registry, served_by, name)
    return seen, list(dict.fromkeys(problems))


def _while_unlisted(cfg: dict, registry: Dict[str, dict], served_by: Sequence[str], task_type: str) -> List[str]:
    """The plugin 1.16 picks while this connector's ListAgents goes unanswered, since propeller's start or only
    since (handler.go ResolvePlugin reads the start-up registration, then the current registry)."""
    order = list(connector_service(cfg).get("connectors") or {})
    unanswered = registry_1_16(cfg, {d: (None if d in served_by else Listing()) for d in endpoints(cfg)}, order)
    for at_start in (unanswered, registry):
        picked = plugin_1_16(cfg, at_start, unanswered, task_type)
        if picked != PLUGIN:
            return [
                f"while this connector does not answer ListAgents, 1.16 runs {task_type} tasks with the {picked} "
                f"plugin (a plain pod in Flyte's cluster): add `{task_type}` to "
                "plugins.connector-service.supportedTaskTypes"
            ]
    return []


def _plugin_fix(cfg: dict, task_type: str, plugin: str) -> str:
    if not enabled(cfg, PLUGIN):
        return (
            f"1.16 runs {task_type} tasks with the {plugin} plugin: add connector-service to "
            "tasks.task-plugins.enabled-plugins"
        )
    return (
        f"1.16 runs {task_type} tasks with the {plugin} plugin: set "
        f"tasks.task-plugins.default-for-task-types.{task_type}: connector-service"
    )


def _route_fix(cfg: dict, kind: Kind, targets: List[str], served_by: Sequence[str]) -> str:
    name = kind.category[0]
    section = connector_service(cfg)
    if name in (section.get("connectorfortasktypes") or {}):
        return (
            f"{kind.label} ({name} v{kind.category[1]}) reaches {_where(cfg, targets)}: remove "
            f"plugins.connector-service.connectorForTaskTypes.{name} (flytepropeller 1.16 replaces every version "
            "ListAgents listed with version 0 alone)"
        )
    if not set(served_by) & set(endpoints(cfg)):
        return (
            f"{kind.label} reaches {_where(cfg, targets)}: no deployment in plugins.connector-service is this "
            "connector: add it under plugins.connector-service.connectors (or point defaultConnector at it)"
        )
    return (
        f"{kind.label} reaches {_where(cfg, targets)}: another deployment also lists {name} "
        f"({', '.join(t for t in targets if t not in served_by)}): remove {name} from its image, or that deployment"
    )
