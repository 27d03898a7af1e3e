"""The connector as deployed: the built wheel in a clean virtualenv, started by agent_service, checked by the
preflight against the real bed (a tiny managed job included)."""

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from test_grpc import _free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("deploy")  # one service for both tests


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Dockerfile.agent's steps, outside Docker: wheel, clean venv with the connector extras, agent_service."""
    work = tmp_path_factory.mktemp("deploy")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((work / "dist").glob("flytekitplugins_skypilot-*.whl"))
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(work / "venv")], check=True)
    python = str(work / "venv" / "bin" / "python")
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{wheel}[connector]",
        ],
        check=True,
        capture_output=True,
    )
    app = work / "app"  # the image's /app: agent_service beside the installed wheel, nothing else of the repo
    shutil.copytree(ROOT / "agent_service", app / "agent_service")
    port, metrics = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CONNECTOR_PORT=str(port), CONNECTOR_PROMETHEUS_PORT=str(metrics), CONNECTOR_WORKERS="4", HOME=str(work))
    log = open(work / "service.log", "w")
    proc = subprocess.Popen([python, "-m", "agent_service"], cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{port}")).result(timeout=120)
        yield {"python": python, "app": app, "port": port, "metrics": metrics, "env": env, "log": work / "service.log"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_preflight_passes_against_the_bed_with_a_real_job(service):
    result = subprocess.run(
        [
            service["python"],
            "-m",
            "agent_service.preflight",
            "--connector",
            f"127.0.0.1:{service['port']}",
            "--run-job",
            "--infra",
            "slurm/localcluster",
            "--storage-prefix",
            os.environ["FLYTE_SKYPILOT_BED_RAW_OUTPUT"],
            "--propeller-config",  # the shipped configuration, judged with the running connector's ListAgents
            str(service["app"] / "agent_service" / "propeller-config.yaml"),
        ],
        cwd=service["app"],
        env=service["env"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert result.returncode == 0 and len(lines) == 7, result.stdout + result.stderr + service["log"].read_text()
    assert lines[0].startswith("PASS  propeller routes") and f"ListAgents from 127.0.0.1:{service['port']}" in lines[0]
    assert "map_task subtask (skypilot v1): 1.16 -> skypilot-connector" in result.stdout
    assert "'skypilot'" in lines[2]
    assert "enabled infras" in lines[4] and "slurm" in lines[4].lower()
    assert "wrote, read and removed s3://" in lines[5]  # with what jobs get from the connector's settings
    assert "SUCCEEDED" in lines[6] and "/dashboard/jobs/" in lines[6]


def test_the_service_exports_prometheus_metrics(service):
    body = urllib.request.urlopen(f"http://127.0.0.1:{service['metrics']}/metrics", timeout=10).read().decode()
    # the preflight's job went through this connector: its SkyPilot calls are counted by call and outcome
    assert 'skypilot_connector_sdk_calls_total{call="launch",outcome="ok"}' in body, body[-3000:]
    assert 'skypilot_connector_sdk_call_seconds_count{call="queue"}' in body
