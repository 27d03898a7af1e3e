"""What Flyte's Helm charts at tag v1.16.8 put into flytepropeller's configuration, for the keys that route
connector tasks (read with `git show v1.16.8:<path>` in flyteorg/flyte; helm itself is not on this machine).

- charts/flyte-binary/templates/configmap.yaml: `001-plugins.yaml` holds `tasks: <enabled_plugins.tasks>` and,
  only when `flyteconnector.enabled`, `plugins.connector-service: <configuration.connectorService>` (lines
  54-71); `100-inline-config.yaml` holds `configuration.inline` when set (lines 208-211). Propeller reads
  `/etc/flyte/config.d/*.yaml` (templates/deployment.yaml).
- charts/flyte-core/templates/propeller/configmap.yaml: `enabled_plugins.yaml` holds `configmap.enabled_plugins`;
  `connector_service.yaml` holds `flyteconnector.plugin_config`, only when `flyteconnector.enabled`.
- The defaults below are the charts' values.yaml at the tag (flyte-binary lines 171-179, 407-430; flyte-core
  lines 376-390, 1125-1143), reduced to these keys. Helm merges a user's values over them map by map, lists
  and scalars replaced.
"""

import copy
from typing import Dict

# both charts' enabled_plugins.tasks (flyte-core under configmap)
TASK_PLUGINS = {
    "task-plugins": {
        "enabled-plugins": ["container", "sidecar", "k8s-array", "connector-service", "echo"],
        "default-for-task-types": {"container": "container", "sidecar": "sidecar", "container_array": "k8s-array"},
    }
}

FLYTE_BINARY_DEFAULTS = {
    "configuration": {
        "connectorService": {
            "defaultConnector": {
                "endpoint": "k8s://flyteconnector.flyte:8000",
                "insecure": True,
                "timeouts": {"GetTask": "10s", "ListAgents": "3s"},
                "defaultTimeout": "10s",
            }
        },
        "inline": {},
    },
    "flyteconnector": {"enabled": False},
    "enabled_plugins": {"tasks": TASK_PLUGINS},
}

FLYTE_CORE_DEFAULTS = {
    "flyteconnector": {
        "enabled": False,
        "plugin_config": {
            "plugins": {
                "connector-service": {
                    "defaultConnector": {"endpoint": "k8s://flyteconnector.flyte:8000", "insecure": True},
                    "supportedTaskTypes": [],
                }
            }
        },
    },
    "configmap": {
        "enabled_plugins": {"tasks": TASK_PLUGINS},
    },
}


def helm_values(defaults: dict, values: dict) -> dict:
    """The user's values over the chart's, map by map."""
    out = copy.deepcopy(defaults)
    for key, value in (values or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flyte_binary(values: dict) -> Dict[str, dict]:
    """Propeller's config files (name -> content) from flyte-binary values."""
    v = helm_values(FLYTE_BINARY_DEFAULTS, values)
    plugins = {"tasks": v["enabled_plugins"]["tasks"]}
    if v["flyteconnector"]["enabled"]:
        plugins["plugins"] = {"connector-service": v["configuration"]["connectorService"]}
    files = {"001-plugins.yaml": plugins}
    if v["configuration"].get("inline"):
        files["100-inline-config.yaml"] = v["configuration"]["inline"]
    return files


def flyte_core(values: dict) -> Dict[str, dict]:
    """Propeller's config files (name -> content) from flyte-core values."""
    v = helm_values(FLYTE_CORE_DEFAULTS, values)
    files = {"enabled_plugins.yaml": v["configmap"]["enabled_plugins"]}
    if v["flyteconnector"]["enabled"]:
        files["connector_service.yaml"] = v["flyteconnector"]["plugin_config"]
    return files
