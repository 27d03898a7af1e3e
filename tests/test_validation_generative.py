"""Generated `SkyPilot(...)` configs and task YAMLs, each judged by SkyPilot's own offline validation of the job the
plugin would launch (its task YAML, through Flyte's wire form and translate.task_yaml, then sky.Task.from_yaml_config
and the per-resources checks SkyPilot makes when it plans a launch). The plugin must accept exactly what SkyPilot
accepts, refuse the rest at declaration naming the field, and never crash.

The cases run in two worker processes (SkyPilot's validation is slow; each worker imports SkyPilot once) with
SkyPilot's catalog seeded from testbed/catalog, as on the bed: accelerator names are checked offline.
"""

import copy
import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

SEED = 20261203
N_CONFIGS = 2100
N_YAMLS = 240
SHARDS = 2
REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "testbed" / "catalog" / "v8"

# ---- what a generated value is: (value, tag). Tag None: SkyPilot's answer decides; "policy": the plugin refuses
# it by design (SkyPilot's answer does not count, the refusal must still name the field); "undefined": SkyPilot's
# answer means nothing (non-finite numbers, bools as counts, names SkyPilot never sees).
POLICY, UNDEFINED = "policy", "undefined"

CPUS = [(4, None), (1, None), (0.5, None), ("4+", None), ("2.5", None), (".5", None), ("1e2", None), (" 8", None)]
CPUS += [(0, None), (-1, None), ("0+", None), ("lots", None), ("2x", None), ("4++", None), ("", None)]
CPUS += [("inf", UNDEFINED), ("nan", UNDEFINED), (True, UNDEFINED), ([4], None)]
MEMORY = [(16, None), ("16+", None), ("32GB", None), ("32gb", None), ("64Gi", None), ("512Mi", None)]
MEMORY += [("100MB", None), ("1TB+", None), ("1.5tb", None), ("0.5GB", None), (8.5, None), ("2Ti+", None)]
MEMORY += [("64G", None), ("64GiB", None), ("big", None), (-3, None), ("16 GB", None), ("GB", None)]
MEMORY += [(0, POLICY), ("0", POLICY), ("16x", POLICY), ("inf", UNDEFINED)]
ACCELERATORS = [("H100:8", None), ("H100", None), ("h100:2", None), ("L4:1", None), ("A100-80GB:8", None)]
ACCELERATORS += [("a100-80gb:4", None), ("Gaudi HL-205:1", None), ("tpu-v4-8", None), ("H100:0.5", None)]
ACCELERATORS += [({"H100": 8}, None), ({"A100": 1.5}, None), ({"L4", "A10G"}, None), (["H100:8", "A100:8"], None)]
ACCELERATORS += [("A100-80GB-S:1", None), ("A100x8", None), ("H100x8", None), ("Nope:1", None), ("H100-:1", None)]
ACCELERATORS += [("H100:0", None), ("H100:-1", None), ("H100:eight", None), ("H100:1:2", None), ({"H100": 0}, None)]
ACCELERATORS += [(["H100:0"], None), (7, None), ("", None), ({"H100": "x"}, None), ({"H100": True}, UNDEFINED)]
INFRA = [("aws", None), ("aws/us-east-1", None), ("gcp", None), ("k8s", None), ("k8s/my-ctx", None)]
INFRA += [("kubernetes", None), ("slurm/mycluster", None), ("aws//x", None), ("nocloud", None), (5, None)]
DISK_SIZE = [(256, None), ("256GB", None), ("1TB", None), ("256", None), ("512gb", None), (0, None), (-5, None)]
DISK_SIZE += [("big", None), ("1.5GB", None), (100.5, None), ("10MB", None)]
DISK_TIER = [("low", None), ("HIGH", None), ("Best", None), ("medium", None), ("fastest", None), (3, None)]
NETWORK_TIER = [("standard", None), ("BEST", None), ("fast", None)]
JOB_RECOVERY = [("FAILOVER", None), ("failover", None), ("EAGER_NEXT_REGION", None), ("none", None)]
JOB_RECOVERY += [({"strategy": "FAILOVER", "max_restarts_on_errors": 3}, None), ({"recover_on_exit_codes": [33]}, None)]
JOB_RECOVERY += [
    ("BOGUS", None),
    ({"strategy": "x"}, None),
    ({"max_restarts_on_errors": -1}, None),
    ({"bogus": 1}, None),
]
IMAGE_ID = [("docker:ubuntu:22.04", None), ("ami-0123", None), ({"us-east-1": "ami-1", "us-west-2": "ami-2"}, None)]
IMAGE_ID += [(5, None), ({"us-east-1": 5}, None), ("", None)]
PORTS = [(8080, None), ("8080", None), ("8000-8010", None), ([8080, "9000-9010"], None), ("8000,9000", None)]
PORTS += [("abc", None), (0, None), (70000, None), ("10-1", None), ([8080, "x"], None), ("-1", None)]
MAX_COST = [(10, None), (2.5, None), (0, None), (-1, None), (math.inf, None), (math.nan, None), ("10", None)]
PRIORITY = [(0, None), (500, None), (1000, None), (5000, None), (-1, None), (-2000, None), ("high", None)]
USE_SPOT = [(True, None), (False, None), ("maybe", None)]
LABELS = [({"team": "ml"}, None), ({"a": 1}, None)]
ENVS = [({"A": "1"}, None), ({"EPOCHS": 3}, None), ({"NOT A NAME": "x"}, POLICY), ({"A": None}, None)]
SECRETS = [(["HF_TOKEN"], None), (["hf token"], POLICY), (["SKYPILOT_SERVICE_ACCOUNT_TOKEN"], POLICY)]
SETUP = [("pip list", None), (5, None)]
NUM_NODES = [(1, None), (2, None), (4, None), (0, None), (-1, None), ("two", None)]
FILE_MOUNTS = [({"/data": "s3://bkt"}, None), ({"/d": {"source": "s3://b", "mode": "MOUNT"}}, None)]
FILE_MOUNTS += [
    ({"/d": {"source": "gs://b", "mode": "COPY"}}, None),
    ({"/d": {"source": "s3://b", "mode": "BOGUS"}}, None),
]
FILE_MOUNTS += [
    ({"/d": {"source": "s3://b", "mode": "MOUNT_CACHED"}}, None),
    ({"/d": {"name": "bkt", "store": "s3"}}, None),
]
FILE_MOUNTS += [
    ({"/d": {"source": "s3://b", "store": "nostore"}}, None),
    ({"/d": {"source": "s3://b", "bogus": 1}}, None),
]
FILE_MOUNTS += [({"/d": {"source": "s3://b", "mode": "copy"}}, None), ({"/d": 5}, None)]
FILE_MOUNTS += [
    ({"/d": "./local"}, POLICY),
    ({"/d/${X}": "s3://b"}, POLICY),
    ({"/d": {"source": "s3://b/sub"}}, POLICY),
]
CONFIG = [({"kubernetes": {"pod_config": {"spec": {"runtimeClassName": "nvidia"}}}}, None), ({"kubernetes": 5}, None)]
CONFIG += [({"bogus": 1}, None), ({"kubernetes": {"kueue": 3}}, None), ({"jobs": {"bucket": "s3://b"}}, None)]
NAMES = [("p1", None), ("-bad", POLICY), ("a" * 80, POLICY)]
CANDIDATE = [{"infra": "aws"}, {"infra": "gcp"}, {"accelerators": "H100:8"}, {"cpus": "x"}, {"accelerators": "H100:0"}]
CANDIDATE += [{"cpu": 2}, {"accelerators": "A100x8"}, {"memory": "64G"}, {"memory": "32GB"}, {"use_spot": True}]
CANDIDATE += [{"infra": "k8s", "accelerators": "Custom:1"}, {"ports": "abc"}, {"disk_tier": "HIGH"}, {"region": 5}]
CANDIDATE += [{"job_recovery": "BOGUS"}, {"infra": "aws//x"}]

POOLS = {
    "cpus": CPUS,
    "memory": MEMORY,
    "accelerators": ACCELERATORS,
    "infra": INFRA,
    "disk_size": DISK_SIZE,
    "disk_tier": DISK_TIER,
    "network_tier": NETWORK_TIER,
    "job_recovery": JOB_RECOVERY,
    "image_id": IMAGE_ID,
    "ports": PORTS,
    "max_hourly_cost": MAX_COST,
    "priority": PRIORITY,
    "use_spot": USE_SPOT,
    "labels": LABELS,
    "envs": ENVS,
    "secrets": SECRETS,
    "setup": SETUP,
    "num_nodes": NUM_NODES,
    "file_mounts": FILE_MOUNTS,
    "config": CONFIG,
    "pool": NAMES,
    "cluster_name": NAMES,
    "kueue_local_queue": [("q", None), (5, None)],
    "priority_class": [("high", None), (5, None)],
    "instance_type": [("p4d.24xlarge", None)],
    "accelerator_args": [({"runtime_version": "tpu-vm-base"}, None), ("x", None)],
    "on_host": [(True, None), (False, None)],
}

# The classes the audit found, each at least once, whatever the random draw.
KNOWN = [
    {"memory": "64G"},
    {"cpus": 0},
    {"accelerators": "H100:0"},
    {"ports": "abc"},
    {"any_of": [{"cpus": "x"}]},
    {"ordered": [{"accelerators": "H100:0"}, {"infra": "aws"}]},
    {"file_mounts": {"/d": {"source": "s3://b", "mode": "BOGUS"}}},
    {"max_hourly_cost": math.inf},
    {"config": {"kubernetes": 5}, "kueue_local_queue": "q"},
    {"image_id": {"us-east-1": "ami-1", "us-west-2": "ami-2"}, "cloud": "aws"},
    {"accelerators": {"L4", "A10G"}},
    {"disk_size": "256GB"},
    {"disk_tier": "HIGH"},
    {"memory": "64Gi"},
    {"accelerators": "A100x8"},
    {"accelerator": "H100:8"},
    {"infra": "aws", "region": "us-east-1"},
    {"on_host": True, "image_id": "docker:ubuntu"},
    {"pool": "p", "cluster_name": "c"},
    {"any_of": [{"cpus": 2}], "ordered": [{"cpus": 4}]},
    {"accelerators": {"L4": None, "A10G": 2}},
    {"accelerators": {"L4", "A10G:2"}},
]


def _policy(kwargs: dict):
    """Combinations the plugin refuses by design (two ways of saying one thing), whatever SkyPilot says."""
    both = [("pool", "cluster_name"), ("any_of", "ordered"), ("infra", "cloud"), ("infra", "region")]
    if kwargs.get("on_host") is True and kwargs.get("image_id") or any(a in kwargs and b in kwargs for a, b in both):
        return POLICY
    return None


# Refusals an author must be able to act on: (kwargs, what the message must say).
HINTS = [
    ({"accelerators": "A100x8"}, "A100:8"),
    ({"accelerators": "H100x8"}, "H100:8"),
    ({"accelerators": "H10O:8"}, "'H100'"),
    ({"any_of": [{"infra": "aws"}, {"accelerators": "A100x8"}]}, "any_of[1]"),
    ({"ordered": [{"cpu": 2}]}, "did you mean 'cpus'"),
    ({"ports": "abc"}, "from-to"),
    ({"memory": "64G"}, '"32GB"'),
    ({"job_recovery": "BOGUS"}, "FAILOVER"),
    ({"file_mounts": {"/d": {"source": "s3://b", "mode": "BOGUS"}}}, "MOUNT_CACHED"),
    ({"config": {"kubernetes": 5}, "kueue_local_queue": "q"}, "config.kubernetes"),
    ({"disk_tier": "fastest"}, "'ultra'"),
]


def generate_configs(rng: random.Random, n: int) -> list:
    """`n` SkyPilot(...) keyword sets: the known classes, then random mixes of 1-4 fields (and candidates)."""
    cases = [(kwargs, _policy(kwargs)) for kwargs in KNOWN]
    while len(cases) < n:
        kwargs, tag = {}, None
        for field in rng.sample(sorted(POOLS), rng.randint(1, 4)):
            value, value_tag = rng.choice(POOLS[field])
            kwargs[field], tag = copy.deepcopy(value), tag or value_tag
        roll = rng.random()
        if roll < 0.2:
            kind = rng.choice(["any_of", "ordered"])
            kwargs[kind] = [copy.deepcopy(rng.choice(CANDIDATE)) for _ in range(rng.randint(1, 3))]
        elif roll < 0.25:
            kwargs.update(cloud=rng.choice(["aws", "gcp", "AWS", "nocloud"]), region=rng.choice(["us-east-1", 5]))
        elif roll < 0.27:
            kwargs[rng.choice(["cpu", "accelerator", "gpus", "regions"])] = 1  # not a field: did-you-mean
            tag = UNDEFINED
        cases.append((kwargs, tag or _policy(kwargs)))
    return cases


# ---- task YAMLs for SkyPilot.from_yaml ----

REAL_WORLD = [  # SkyPilot's documented task-YAML forms (run / workdir removed)
    {"name": "train", "resources": {"accelerators": "A100:8"}, "num_nodes": 2, "setup": "pip install -r req.txt"},
    {"resources": {"accelerators": {"H100": 8}, "use_spot": True, "job_recovery": {"max_restarts_on_errors": 3}}},
    {"resources": {"any_of": [{"infra": "aws"}, {"infra": "gcp"}], "accelerators": "L4:1", "disk_size": 256}},
    {"resources": {"ordered": [{"accelerators": "H100:8"}, {"accelerators": "A100-80GB:8"}]}},
    {"resources": {"accelerators": {"L4": None, "A10G": None}, "memory": "32+", "cpus": "8+"}},  # {L4, A10G}
    {"resources": {"infra": "k8s", "image_id": "docker:nvcr.io/nvidia/pytorch:24.01-py3", "ports": 8080}},
    {"resources": {"infra": "aws/us-east-1", "disk_tier": "best", "network_tier": "best"}, "envs": {"EPOCHS": 3}},
    {"envs": {"MODEL": "llama", "HF_HOME": "/tmp/hf"}, "secrets": {"HF_TOKEN": None, "WANDB_API_KEY": None}},
    {"file_mounts": {"/data": "s3://my-bucket", "/ckpt": {"source": "gs://ckpt", "mode": "MOUNT_CACHED"}}},
    {"resources": {"cloud": "aws", "region": "us-west-2", "image_id": {"us-west-2": "ami-0abc"}}},
    {"config": {"kubernetes": {"pod_config": {"spec": {"runtimeClassName": "nvidia"}}}}, "resources": {"infra": "k8s"}},
    {"resources": {"disk_size": "1TB", "memory": "64GB+", "max_hourly_cost": 20, "priority": 100}},
    {"resources": {"infra": "slurm/mycluster", "accelerators": "H100:4", "cpus": 16}, "num_nodes": 4},
    {"name": "serve-ish", "resources": {"ports": ["8000-8010", 9000], "labels": {"team": "ml"}}},
    {"resources": {"infra": "aws", "accelerators": "A100:8", "use_spot": True, "job_recovery": "FAILOVER"}},
    {"resources": {"accelerators": ["A100:8", "H100:8"], "cloud": "aws", "region": "us-east-1"}},
    {"resources": {"cpus": 4, "memory": 16, "disk_size": 100}, "envs": {"SEED": 1, "LR": 0.001, "DEBUG": True}},
    {"resources": {"infra": "gcp", "accelerators": "tpu-v5e-8", "accelerator_args": {"tpu_vm": True}}},
    {"secrets": ["HF_TOKEN"], "setup": "set -e\npip install torch\n"},
    {"resources": {"accelerators": "H100:8", "priority_class": "high", "image_id": "docker:ubuntu:22.04"}},
    {},
]
BROKEN_YAML = [
    "resources:\n  cpus: 4\n\tmemory: 16\n",  # a tab
    "resources: [cpus: 4\n",  # unclosed flow sequence
    "resources:\n  cpus: 4\n memory: 16\n",  # bad indentation
    "envs: {A: 1, B\n",
    'setup: "unterminated\n',
    "key: value: other\n",
    "- a\n b: c\n",
    "@bad\n",
]
NOT_A_MAPPING = ["6\n", "hello\n", "- resources: {}\n- num_nodes: 2\n", "[1, 2]\n", "3.5\n", "true\n"]
CANNOT_HONOUR = [  # key, value: refused, naming the key
    ("volumes", {"/mnt/vol": "my-volume"}),
    ("volume_mounts", [{"path": "/mnt", "volume_name": "v"}]),
    ("event_callback", "echo done"),
    ("run", "python train.py"),
    ("workdir", "."),
    ("service", {"readiness_probe": "/", "replicas": 2}),
    ("pool", {"workers": 2}),
    ("file_mounts_mapping", {"/a": "/b"}),
    ("inputs", {"s3://b": 1}),
    ("outputs", {"s3://b": 1}),
]
BAD_VALUES = [  # (task YAML, the key its refusal names)
    ({"num_nodes": 0}, "num_nodes"),
    ({"num_nodes": -2}, "num_nodes"),
    ({"resources": {"memory": "64G"}}, "memory"),
    ({"resources": {"accelerators": "A100x8"}}, "accelerators"),
    ({"resources": {"cpus": 0}}, "cpus"),
    ({"resources": {"ports": "abc"}}, "ports"),
    ({"resources": {"autostop": 10}}, "autostop"),
    ({"resources": {"local_disk": "nvme"}}, "local_disk"),
    ({"resources": {"any_of": [{"accelerators": "H100:0"}]}}, "any_of"),
    ({"resourcez": {}}, "resourcez"),
    ({"secrets": {"HF_TOKEN": "hf_abc"}}, "secrets"),
    ({"resources": 5}, "resources"),
    ({"file_mounts": {"/d": {"source": "s3://b", "mode": "BOGUS"}}}, "file_mounts"),
    ({"config": {"kubernetes": 5}}, "config"),
    ({"resources": {"max_hourly_cost": -1}}, "max_hourly_cost"),
]
NOT_A_SOURCE = [6, 6.0, None, b"resources: {}", ["task.yaml"], object()]


def generate_yamls(rng: random.Random, n: int) -> list:
    """`n` from_yaml inputs as (kind, source, must_name): kind "ok" (must be accepted), "merged" (two real-world YAMLs
    in one: accepted exactly when SkyPilot accepts it), "text" (YAML text that must be refused naming `must_name`),
    "dict" (refused likewise), "source" (not a path or dict: refused)."""
    cases = [("ok", copy.deepcopy(y), None) for y in REAL_WORLD]
    cases += [("text", text, "YAML") for text in BROKEN_YAML]
    cases += [("text", text, "mapping") for text in NOT_A_MAPPING]
    cases += [("text", "num_nodes: 2\n---\nnum_nodes: 3\n", "documents")]
    cases += [("source", source, "path or a dict") for source in NOT_A_SOURCE]
    cases += [("dict", {"resources": {"cpus": 2}, key: value}, key) for key, value in CANNOT_HONOUR]
    cases += [("dict", task, key) for task, key in BAD_VALUES]
    while len(cases) < n:
        base = copy.deepcopy(rng.choice(REAL_WORLD))
        other = rng.choice(REAL_WORLD)
        base.setdefault("resources", {}).update(copy.deepcopy(other.get("resources") or {}))
        if "any_of" in base["resources"] and "ordered" in base["resources"]:
            del base["resources"]["ordered"]
        if base["resources"].get("cloud") and base["resources"].get("infra"):
            del base["resources"]["infra"]
        roll = rng.random()
        if roll < 0.45:
            cases.append(("merged", base, None))
        elif roll < 0.6:
            key, value = rng.choice(CANNOT_HONOUR)
            cases.append(("dict", {**base, key: copy.deepcopy(value)}, key))
        elif roll < 0.8:
            task, key = rng.choice(BAD_VALUES)
            merged = {**base, **copy.deepcopy(task)}
            if isinstance(task.get("resources"), dict) and isinstance(base.get("resources"), dict):
                merged["resources"] = {**base["resources"], **copy.deepcopy(task["resources"])}
            cases.append(("dict", merged, key))
        elif roll < 0.9:
            cases.append(("text", rng.choice(BROKEN_YAML) + f"# {len(cases)}\n", "YAML"))
        else:
            cases.append(("text", _yaml_dump(base) + "---\n" + _yaml_dump(other), "documents"))
    return cases


def _yaml_dump(task: dict) -> str:
    import yaml

    return yaml.safe_dump(_sets_as_lists(task))


def _sets_as_lists(value):
    if isinstance(value, dict):
        return {k: _sets_as_lists(v) for k, v in value.items()}
    if isinstance(value, (set, list)):
        return [_sets_as_lists(v) for v in sorted(value, key=str)] if isinstance(value, set) else value
    return value


# ---- the worker (one process per shard): runs the plugin and the oracle, prints one JSON line per case ----


def _catalog_names() -> dict:
    with open(CATALOG / "common" / "accelerators.csv") as f:
        return {row["AcceleratorName"].lower(): row["AcceleratorName"] for row in csv.DictReader(f)}


def oracle(custom: dict) -> "str | None":
    """SkyPilot's reason to refuse the job the plugin would launch from this `custom`, or None: through Flyte's
    wire form (protobuf Struct as JSON), translate.task_yaml, then SkyPilot itself."""
    from google.protobuf import json_format, struct_pb2

    from flytekitplugins.skypilot import translate

    try:
        struct = struct_pb2.Struct()
        struct.update(_sets_as_lists(custom))
        wire = json.loads(json_format.MessageToJson(struct))
    except Exception as e:
        return f"serialisation: {type(e).__name__}: {e}"
    template = SimpleNamespace(
        custom=wire,
        container=SimpleNamespace(args=["pyflyte-execute", "--inputs", "s3://b/in"], env={}, image="ghcr.io/a/b:1"),
        id=SimpleNamespace(name="t"),
    )
    try:
        names = wire.get("secrets") or []
        task = translate.task_yaml(template, "job-1", secrets={n: "value" for n in names} or None)
    except Exception as e:
        return f"translation: {type(e).__name__}: {e}"
    return sky_refuses(task)


def sky_refuses(task_yaml: dict) -> "str | None":
    import sky
    from sky import clouds
    from sky.utils import accelerator_registry, annotations

    annotations.is_on_api_server = True  # the server validates the launch: its own checks, all of them
    try:
        task = sky.Task.from_yaml_config(copy.deepcopy(task_yaml))
        for resources in task.resources:
            resources._try_validate_managed_job_attributes()
            resources._try_validate_max_hourly_cost()
            cost = resources.max_hourly_cost
            if cost is not None and not math.isfinite(cost):
                return f"max_hourly_cost {cost} cannot bound a launch"
            for name in resources.to_yaml_config().get("accelerators") or {}:
                on_cluster = isinstance(resources.cloud, (clouds.Kubernetes, clouds.Slurm, clouds.SSH))
                if name.lower().startswith("tpu-") or on_cluster:
                    continue
                if not any(name.lower() in known for known in CATALOG_NAMES):
                    return f"accelerator {name!r} is in no catalog: the launch finds no resources"
                canonical = accelerator_registry.canonicalize_accelerator_name(name, resources.cloud)
                if canonical.lower() not in CATALOG_NAMES:
                    return f"accelerator {name!r} -> {canonical!r} is in no catalog"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


CATALOG_NAMES: dict = {}


def judge_config(kwargs: dict, tag) -> dict:
    from flytekitplugins.skypilot import SkyPilot

    try:
        config = SkyPilot(**copy.deepcopy(kwargs))
        outcome, message = "accepted", ""
    except ValueError as e:
        outcome, message, config = "refused", _what_it_says(e), None
    except Exception as e:
        return {"outcome": "crash", "message": f"{type(e).__name__}: {e}", "tag": tag}
    if config is not None:
        reason = oracle(config.to_custom())
    elif tag is None and set(kwargs) <= set(SkyPilot.model_fields):
        try:
            reason = oracle(SkyPilot.model_construct(**copy.deepcopy(kwargs)).to_custom())
        except Exception:
            reason, tag = "untranslatable", UNDEFINED
    else:
        reason = "n/a"
    named = outcome == "accepted" or any(field in message for field in kwargs)
    return {"outcome": outcome, "message": message[:300], "oracle": reason, "tag": tag, "named": named}


def _what_it_says(error: ValueError) -> str:
    """The refusal as the author reads it: each error's field and message (not pydantic's echo of the input)."""
    if hasattr(error, "errors"):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    return str(error)


def judge_yaml(kind: str, source, must_name, tmp: Path, index: int) -> dict:
    from flytekitplugins.skypilot import SkyPilot

    if kind == "text" or (kind in ("ok", "merged") and index % 2):
        path = tmp / f"task-{index}.yaml"
        path.write_text(source if kind == "text" else _yaml_dump(source))
        given = path
    else:
        given = source
    try:
        config = SkyPilot.from_yaml(given)
    except ValueError as e:
        message = _what_it_says(e)
        if kind == "merged":  # SkyPilot refuses it too, and the refusal names one of its fields
            keys = [*source, *(source.get("resources") or {})]
            ok = sky_refuses({**source, "run": "true"}) is not None and any(k in message for k in keys)
        else:
            ok = kind != "ok" and must_name.lower() in message.lower()
        return {"kind": kind, "outcome": "refused", "message": message[:300], "ok": ok}
    except Exception as e:
        return {"kind": kind, "outcome": "crash", "message": f"{type(e).__name__}: {e}", "ok": False}
    if kind not in ("ok", "merged"):
        return {"kind": kind, "outcome": "accepted", "message": f"should name {must_name}", "ok": False}
    reason = oracle(config.to_custom()) or _dropped(source, config)
    return {"kind": kind, "outcome": "accepted", "message": reason or "", "ok": reason is None}


def _dropped(task: dict, config) -> "str | None":
    """What of the YAML the config lost (every key is honoured or refused, never dropped)."""
    out = config.to_task_yaml()
    for key, value in (task.get("resources") or {}).items():
        if _sets_as_lists(out.get("resources", {}).get(key)) != _sets_as_lists(value):
            return f"resources.{key} dropped or changed: {value!r} -> {out.get('resources', {}).get(key)!r}"
    for key in ("num_nodes", "setup", "file_mounts", "config"):
        if key in task and out.get(key, 1 if key == "num_nodes" else None) != task[key]:
            return f"{key} dropped or changed"
    if set(task.get("envs") or {}) != set(out.get("envs") or {}):
        return "envs dropped"
    if sorted(task.get("secrets") or {}) != sorted(config.to_custom()["secrets"]):
        return "secrets dropped"
    return None


def worker(shard: int, shards: int) -> None:
    CATALOG_NAMES.update(_catalog_names())
    rng = random.Random(SEED)
    configs, yamls = generate_configs(rng, N_CONFIGS), generate_yamls(rng, N_YAMLS)
    tmp = Path(tempfile.mkdtemp())
    for i, (kwargs, tag) in enumerate(configs):
        if i % shards == shard:
            print(json.dumps({"config": i, "kwargs": repr(kwargs), **judge_config(kwargs, tag)}), flush=True)
    for i, (kwargs, hint) in enumerate(HINTS):
        if i % shards == shard:
            result = judge_config(kwargs, None)
            print(json.dumps({"hint": hint, "kwargs": repr(kwargs), "ok": hint in result["message"], **result}))
    for i, (kind, source, must_name) in enumerate(yamls):
        if i % shards == shard:
            result = judge_yaml(kind, source, must_name, tmp, i)
            print(json.dumps({"yaml": i, "source": repr(source)[:200], **result}), flush=True)


# ---- the test ----


def run_workers(plugin_root: Path = REPO) -> list:
    runtime = Path(tempfile.mkdtemp(prefix="gen-sky-"))
    shutil.copytree(CATALOG, runtime / ".sky" / "catalogs" / CATALOG.name)
    env = {
        **os.environ,
        "SKY_RUNTIME_DIR": str(runtime),
        "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1",
        "PYTHONPATH": str(plugin_root),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(shard), str(SHARDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for shard in range(SHARDS)
    ]
    lines = [line for p in procs for line in p.communicate(timeout=300)[0].splitlines()]
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
    shutil.rmtree(runtime, ignore_errors=True)
    return [json.loads(line) for line in lines if line.startswith("{")]


KINDS = ("crashes", "accepted_but_fails", "wrongly_refused", "unnamed_refusals", "yaml_wrong", "hints_missing")


def classify(results: list) -> dict:
    configs = [r for r in results if "config" in r]
    judged = [r for r in configs if r["outcome"] != "crash"]
    return {
        "configs": len(configs),
        "yamls": len([r for r in results if "yaml" in r]),
        "hints": len([r for r in results if "hint" in r]),
        "crashes": [r for r in configs if r["outcome"] == "crash"],
        "accepted_but_fails": [r for r in judged if r["outcome"] == "accepted" and r["oracle"] is not None],
        "wrongly_refused": [r for r in judged if r["outcome"] == "refused" and r["oracle"] is None and not r["tag"]],
        "unnamed_refusals": [r for r in judged if not r["named"]],
        "yaml_wrong": [r for r in results if "yaml" in r and not r["ok"]],
        "hints_missing": [r for r in results if "hint" in r and not r["ok"]],
        "accepted": len([r for r in judged if r["outcome"] == "accepted"]),
        "refused": len([r for r in judged if r["outcome"] == "refused"]),
    }


def test_declaration_accepts_exactly_what_skypilot_accepts_and_names_the_field():
    counts = classify(run_workers())
    summary = {k: v if isinstance(v, int) else len(v) for k, v in counts.items()}
    print(summary)
    assert counts["configs"] == N_CONFIGS and counts["yamls"] == N_YAMLS and counts["hints"] == len(HINTS), summary
    assert counts["accepted"] > 300 and counts["refused"] > 300, summary  # both sides are exercised
    for kind in KINDS:
        assert not counts[kind], (kind, summary, counts[kind][:5])


if __name__ == "__main__":
    if sys.argv[1] == "report":  # the counts for another checkout of the plugin: report <plugin root>
        found = classify(run_workers(Path(sys.argv[2])))
        print(json.dumps({k: v if isinstance(v, int) else len(v) for k, v in found.items()}))
        for kind in KINDS:
            for r in found[kind][:4]:
                print(kind, json.dumps(r)[:400])
    else:
        worker(int(sys.argv[1]), int(sys.argv[2]))
