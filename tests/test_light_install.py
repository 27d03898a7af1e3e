"""A job's image needs only `pip install flytekitplugins-skypilot`: nothing a running task imports pulls in
SkyPilot, declarations are still checked (by the plugin where SkyPilot is missing), and the base install adds
little to flytekit's own."""

import importlib.metadata
import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterable, Set

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flytekitplugins.skypilot import SkyPilot, own_checks, sky_api

ROOT = Path(__file__).resolve().parent.parent

# Run first in each child: `sky` and `sky.*` cannot be imported, as in an image without SkyPilot.
_NO_SKY = """
import sys

class _NoSky:
    def find_spec(self, name, path=None, target=None):
        if name == "sky" or name.startswith("sky."):
            raise ImportError(f"No module named {name!r} (SkyPilot is not installed in this image)")
        return None

sys.meta_path.insert(0, _NoSky())
"""

_TASK_MODULE = """
from flytekit import task
from flytekitplugins.skypilot import SkyPilot


@task(
    task_config=SkyPilot(
        infra="aws/us-east-1",
        cpus="8+",
        memory="32GB",
        accelerators="H100:8",
        num_nodes=2,
        use_spot=True,
        envs={"NCCL_DEBUG": "INFO"},
        secrets=["HF_TOKEN"],
        file_mounts={"/data": "s3://training-data"},
        cluster_name="warm-h100",
    )
)
def train(steps: int) -> int:
    return steps
"""

_JOB = """
import json, sys
from collections import OrderedDict

import flytekit
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable

import light_tasks
from flytekitplugins.skypilot import checkpoints, distributed, node_info, sky_api

settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
spec = get_serializable(OrderedDict(), settings, light_tasks.train)
print(json.dumps({
    "custom": light_tasks.train.get_custom(settings),
    "task_type": spec.template.type,
    "available": sky_api.available(),
    "plugin": sys.modules["flytekitplugins.skypilot"].__file__,
    "sky_modules": sorted(m for m in sys.modules if m == "sky" or m.startswith("sky.")),
}))
"""

# What the job's container runs: pyflyte-execute on the task (flytekit loads the plugin's entry point first).
_EXECUTE = """
import json, sys
from flytekit.core.utils import load_proto_from_file, write_proto_to_file
from flytekit.models.literals import Literal, LiteralMap, Primitive, Scalar
from flyteidl.core import literals_pb2

inputs = LiteralMap({"steps": Literal(scalar=Scalar(primitive=Primitive(integer=7)))})
write_proto_to_file(inputs.to_flyte_idl(), "inputs.pb")
sys.argv = [
    "pyflyte-execute", "--inputs", "inputs.pb", "--output-prefix", "out", "--raw-output-data-prefix", "raw",
    "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
    "--", "task-module", "light_tasks", "task-name", "train",
]
from flytekit.bin.entrypoint import execute_task_cmd

try:
    execute_task_cmd()
except SystemExit:
    pass
outputs = load_proto_from_file(literals_pb2.LiteralMap, "out/outputs.pb")
print(json.dumps({
    "o0": outputs.literals["o0"].scalar.primitive.integer,
    "sky_modules": sorted(m for m in sys.modules if m == "sky" or m.startswith("sky.")),
}))
"""

_REFUSED = """
import json
from flytekitplugins.skypilot import SkyPilot

answers = {}
for name, fields in {
    "cpus": {"cpus": 0},
    "memory": {"memory": "0GB"},
    "unknown": {"cpu": 4},
    "infra": {"infra": "aws us-east-1"},
    "pool": {"pool": "-warm"},
    "num_nodes": {"num_nodes": 0},
}.items():
    try:
        SkyPilot(**fields)
        answers[name] = None
    except ValueError as e:
        answers[name] = str(e)
print(json.dumps(answers))
"""


def _without_sky(tmp_path: Path, script: str) -> dict:
    """Runs `script` in a fresh Python where `sky` cannot be imported; returns the JSON it prints."""
    (tmp_path / "light_tasks.py").write_text(_TASK_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-c", _NO_SKY + textwrap.dedent(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_job_declares_and_serialises_a_task_without_skypilot(tmp_path):
    seen = _without_sky(tmp_path, _JOB)
    assert seen["sky_modules"] == []
    assert seen["available"] is False
    assert seen["plugin"].startswith(str(ROOT)), seen["plugin"]  # this checkout's plugin, not another
    assert seen["task_type"] == "skypilot"
    assert seen["custom"]["task"]["resources"] == {
        "infra": "aws/us-east-1",
        "cpus": "8+",
        "memory": "32GB",
        "accelerators": "H100:8",
        "use_spot": True,
    }
    assert seen["custom"]["task"]["num_nodes"] == 2
    assert seen["custom"]["cluster_name"] == "warm-h100"
    assert seen["custom"]["secrets"] == ["HF_TOKEN"]


def test_a_job_runs_the_task_through_pyflyte_execute_without_skypilot(tmp_path):
    seen = _without_sky(tmp_path, _EXECUTE)
    assert seen == {"o0": 7, "sky_modules": []}


def test_without_skypilot_a_wrong_declaration_is_still_refused_naming_the_field(tmp_path):
    answers = _without_sky(tmp_path, _REFUSED)
    assert "cpus=0" in answers["cpus"] and "more than 0" in answers["cpus"]
    assert "memory='0GB'" in answers["memory"]
    assert "'cpu' (did you mean 'cpus'?)" in answers["unknown"]
    assert "infra='aws us-east-1'" in answers["infra"] and "<cloud>[/<region>" in answers["infra"]
    assert "pool='-warm'" in answers["pool"] and "start with a letter" in answers["pool"]
    assert "num_nodes" in answers["num_nodes"]


def test_without_skypilot_a_call_that_needs_it_names_the_extra(monkeypatch):
    monkeypatch.setattr(sky_api, "available", lambda: False)
    with pytest.raises(sky_api.SkyPilotNotInstalled, match=r"flytekitplugins-skypilot\[sky\]"):
        sky_api.endpoint()
    with pytest.raises(sky_api.SkyPilotNotInstalled, match=r"\[connector\]"):
        sky_api.task_from_yaml({"run": "true"})


def test_where_skypilot_is_installed_its_own_schema_decides():
    assert sky_api.available() is True
    with pytest.raises(ValueError, match="SkyPilot rejects"):
        sky_api.check_task_yaml({"resources": {"disk_sizes": 10}})  # passes the plugin's own shape checks
    own_checks.check_task_yaml({"resources": {"disk_sizes": 10}})
    assert SkyPilot(cpus=2).to_task_yaml()["resources"] == {"cpus": 2}


@pytest.mark.parametrize("infra", ["aws", "aws/us-east-1/us-east-1a", "k8s/my/context", "slurm/mycluster", "*/*"])
def test_the_plugins_own_infra_check_takes_what_skypilot_takes(infra):
    own_checks.check_infra(infra)
    sky_api.check_infra(infra)


@pytest.mark.parametrize("name", ["warm-h100", "a", "pool_1.b"])
def test_the_plugins_own_name_check_takes_what_skypilot_takes(name):
    own_checks.check_pool_name(name)
    sky_api.check_pool_name(name)


@pytest.mark.parametrize("name", ["-warm", "1abc", "warm-", "has space"])
def test_the_plugins_own_name_check_refuses_what_skypilot_refuses(name):
    for check in (own_checks.check_pool_name, sky_api.check_pool_name):
        with pytest.raises(ValueError):
            check(name)


# ---- footprint: what `pip install` adds to an image that has flytekit ----


def _setup_lists() -> Dict[str, object]:
    """REQUIRES and EXTRAS of setup.py, read without running setuptools."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="setup_lists")


def _closure(requirements: Iterable[str]) -> Set[str]:
    """The installed distributions `requirements` pull in (markers evaluated, requirement extras followed)."""
    seen: Set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(req.name) or []:  # PackageNotFoundError: not installed here
            dep = Requirement(line)
            wanted = [""] + sorted(req.extras)
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in wanted):
                todo.append(dep)
    return seen


def _added(requirements: Iterable[str]) -> Set[str]:
    requirements = list(requirements)
    flytekit = [r for r in requirements if canonicalize_name(Requirement(r).name) == "flytekit"] or ["flytekit"]
    return _closure(requirements) - _closure(flytekit)


def test_the_base_install_adds_little_to_flytekit():
    lists = _setup_lists()
    flytekit = _closure([r for r in lists["REQUIRES"] if r.startswith("flytekit")])
    base = _added(lists["REQUIRES"])
    pydantic = _closure(["pydantic"]) - flytekit  # pydantic and what it brings (pydantic-core, ...)
    connector = _added([*lists["REQUIRES"], *lists["EXTRAS"]["connector"]])
    print(
        f"\nflytekit alone: {len(flytekit)} distributions"
        f"\nplugin base adds {len(base)}: {sorted(base)} (pydantic's own: {sorted(pydantic)})"
        f"\nplugin[connector] adds {len(connector)}: {sorted(connector)}"
    )
    assert "pydantic" in base
    assert len(base - pydantic) <= 2, sorted(base - pydantic)  # beyond pydantic, at most a couple
    assert len(base) <= len(pydantic) + 2 <= 6, sorted(base)
    assert "skypilot" not in base and "skypilot" in connector
    assert all(canonicalize_name(Requirement(r).name) != "skypilot" for r in lists["REQUIRES"])


def test_every_extra_is_in_the_test_extra():
    extras = _setup_lists()["EXTRAS"]
    for name, requirements in extras.items():
        assert set(requirements) <= set(extras["test"]), name
