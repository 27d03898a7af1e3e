"""The deployable service: image lint, manifests against Kubernetes' schemas, settings, preflight failures."""

import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from agent_service.settings import ServiceSettings
from flytekitplugins.skypilot.settings import ConnectorSettings
from tests.support.store import object_store

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "agent_service" / "k8s").glob("*.yaml"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", str(ROOT / "Dockerfile.agent")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_manifests_validate_against_kubernetes_schemas(path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_manifests_agree_with_each_other_and_with_the_settings():
    docs = {
        d["kind"]: d
        for p in MANIFESTS
        if p.name not in ("kustomization.yaml", "task-secrets.yaml")
        for d in yaml.safe_load_all(p.read_text())
    }
    listed = yaml.safe_load((ROOT / "agent_service" / "k8s" / "kustomization.yaml").read_text())["resources"]
    # every manifest but the secret's placeholder, which `kubectl apply -k` must never apply over the real one
    assert sorted(listed) == sorted(
        p.name for p in MANIFESTS if p.name not in ("kustomization.yaml", "secret.yaml", "task-secrets.yaml")
    )
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert {p["targetPort"] for p in docs["Service"]["spec"]["ports"]} == {p["name"] for p in container["ports"]}
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pod["volumes"][0]["secret"]["secretName"] == docs["Secret"]["metadata"]["name"]
    assert pod["volumes"][1]["secret"]["secretName"] == "skypilot-task-secrets"  # task-secrets.yaml's
    env = {e["name"]: e["value"] for e in container["env"]}
    # the storage secrets the deployment names are keys of its Secret (mounted at /etc/secrets; here as _FSEC_)
    env.update({f"_FSEC_{key.upper()}": "x" for key in docs["Secret"]["stringData"]})
    os.environ.update(env)  # the manifest's settings are valid settings
    try:
        settings = ServiceSettings.from_env()
    finally:
        for name in env:
            os.environ.pop(name)
    assert settings.connector.poll_interval == float(env["FLYTE_SKYPILOT_POLL_INTERVAL"])
    propeller = yaml.safe_load((ROOT / "agent_service" / "propeller-config.yaml").read_text())
    service = propeller["plugins"]["connector-service"]
    [target] = service["connectors"].values()  # the routing itself: tests/test_routing.py
    assert target["endpoint"].endswith(f"{docs['Service']['metadata']['name']}.flyte.svc.cluster.local:8000")
    assert propeller["tasks"]["task-plugins"]["default-for-task-types"]["skypilot"] == "connector-service"


@pytest.mark.parametrize(
    "env, error",
    [
        ({}, "SKYPILOT_API_SERVER_ENDPOINT is not set"),
        ({"SKYPILOT_API_SERVER_ENDPOINT": "skypilot:46580"}, "is not a URL: use http(s)://"),
        (
            {"SKYPILOT_API_SERVER_ENDPOINT": "http://s:1", "FLYTE_SKYPILOT_POLL_INTERVAL": "0.1"},
            "FLYTE_SKYPILOT_POLL_INTERVAL: Input should be greater than or equal to 1",
        ),
        (
            {"SKYPILOT_API_SERVER_ENDPOINT": "http://s:1", "FLYTE_SKYPILOT_OUTAGE_DEADLINE": "soon"},
            "FLYTE_SKYPILOT_OUTAGE_DEADLINE: Input should be a valid number",
        ),
        (
            {"SKYPILOT_API_SERVER_ENDPOINT": "http://s:1", "CONNECTOR_WORKERS": "0"},
            "CONNECTOR_WORKERS: Input should be",
        ),
        (
            {"SKYPILOT_API_SERVER_ENDPOINT": "http://s:1", "CONNECTOR_LOG_LEVEL": "LOUD"},
            "CONNECTOR_LOG_LEVEL: Input should be",
        ),
        (
            {"SKYPILOT_API_SERVER_ENDPOINT": "http://s:1", "FLYTE_SKYPILOT_STORAGE_SECRETS": "FLYTE_AWS_NOPE_KEY"},
            "FLYTE_SKYPILOT_STORAGE_SECRETS names FLYTE_AWS_NOPE_KEY, which the connector does not have",
        ),
    ],
)
def test_bad_settings_stop_start_up_naming_the_variable(env, error):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPILOT_API", "FLYTE_SKYPILOT_", "CONNECTOR_"))}
    result = subprocess.run(
        [sys.executable, "-m", "agent_service"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and error in result.stderr, result.stderr


def test_token_comes_from_the_connector_secret_and_is_never_printed(monkeypatch):
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", "http://s:1")
    monkeypatch.setenv("_FSEC_SKYPILOT_SERVICE_ACCOUNT_TOKEN", "sky_token_5e1f")
    assert ServiceSettings.from_env().has_token
    assert "sky_token_5e1f" not in repr(ServiceSettings.from_env())
    assert ConnectorSettings.from_env().endpoint == "http://s:1"


def preflight(*args, **env) -> subprocess.CompletedProcess:
    """The preflight against a connector that is not there (127.0.0.1:9), with these settings only."""
    own = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_SKYPILOT_STORAGE_", "FLYTE_AWS_", "_FSEC_"))}
    env = {**own, "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1", **env}
    command = [sys.executable, "-m", "agent_service.preflight", "--connector", "127.0.0.1:9", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_preflight_fails_each_check_with_its_fix_when_nothing_answers():
    result = preflight(SKYPILOT_API_SERVER_ENDPOINT="http://127.0.0.1:9")
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert result.returncode == 5 and len(lines) == 5 and all(line.startswith("FAIL") for line in lines), result.stdout
    assert "no gRPC answer at 127.0.0.1:9" in lines[0] and "is `python -m agent_service`" in lines[0]
    assert "http://127.0.0.1:9" in lines[2] and "SKYPILOT_API_SERVER_ENDPOINT" in lines[2]
    assert "jobs get no storage access: set FLYTE_SKYPILOT_STORAGE_SECRETS" in lines[4]


def test_preflight_probes_the_object_store_with_what_jobs_get_and_only_that(tmp_path):
    """The connector's own storage settings (here wrong) play no part: the probe has the jobs' access alone."""
    with object_store(tmp_path / "s3") as store:
        jobs = {
            "FLYTE_SKYPILOT_STORAGE_ENDPOINT": store["FLYTE_AWS_ENDPOINT"],
            "FLYTE_SKYPILOT_STORAGE_SECRETS": "FLYTE_AWS_ACCESS_KEY_ID,FLYTE_AWS_SECRET_ACCESS_KEY",
            "_FSEC_FLYTE_AWS_ACCESS_KEY_ID": store["FLYTE_AWS_ACCESS_KEY_ID"],
            "_FSEC_FLYTE_AWS_SECRET_ACCESS_KEY": store["FLYTE_AWS_SECRET_ACCESS_KEY"],
        }
        connectors_own = {"FLYTE_AWS_ACCESS_KEY_ID": "wrong", "FLYTE_AWS_SECRET_ACCESS_KEY": "wrong"}
        passed = preflight(
            "--storage-prefix",
            "s3://flyte/raw",
            SKYPILOT_API_SERVER_ENDPOINT="http://127.0.0.1:9",
            **jobs,
            **connectors_own,
        )
        wrong = {**jobs, "_FSEC_FLYTE_AWS_SECRET_ACCESS_KEY": "not-the-key-0042"}
        failed = preflight(
            "--storage-prefix", "s3://flyte/raw", SKYPILOT_API_SERVER_ENDPOINT="http://127.0.0.1:9", **wrong
        )
    [ok] = [line for line in passed.stdout.splitlines() if "object store" in line]
    assert ok.startswith("PASS") and "wrote, read and removed s3://flyte/raw/skypilot-preflight/" in ok, passed.stdout
    assert not list((tmp_path / "s3" / "flyte").rglob("skypilot-preflight/*"))  # the probe cleaned up
    [bad] = [line for line in failed.stdout.splitlines() if "object store" in line]
    assert bad.startswith("FAIL") and "cannot be written and read" in bad and "FLYTE_SKYPILOT_STORAGE_SECRETS" in bad
    assert "not-the-key-0042" not in failed.stdout + failed.stderr


def test_preflight_names_the_token_when_the_api_server_refuses_the_credentials(tmp_path):
    # An API server with authentication answers a wrong token with 401 on every path: this loopback stand-in
    # does exactly that (the bed's own API server runs without authentication).
    server = subprocess.Popen([sys.executable, "-c", REFUSER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        result = preflight(
            SKYPILOT_API_SERVER_ENDPOINT=f"http://127.0.0.1:{port}", SKYPILOT_SERVICE_ACCOUNT_TOKEN="sky_wrong_token"
        )
    finally:
        server.kill()
    api_lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))][2:4]
    assert len(api_lines) == 2 and all(line.startswith("FAIL") for line in api_lines), result.stdout
    assert "refused the credentials" in api_lines[0] and "SKYPILOT_SERVICE_ACCOUNT_TOKEN" in api_lines[0], api_lines
    assert "sky_wrong_token" not in result.stdout + result.stderr


REFUSER = """
import http.server, sys
class Refuse(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_POST = _refuse
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def test_the_deployment_passes_the_restricted_pod_security_standard_and_is_hardened():
    """The restricted Pod Security Standard's checks (kubernetes.io/docs/concepts/security/pod-security-standards),
    and what a platform team's review asks beyond them."""
    docs = {
        d["kind"]: d
        for p in MANIFESTS
        if p.name not in ("kustomization.yaml", "task-secrets.yaml")
        for d in yaml.safe_load_all(p.read_text())
    }
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert {k for v in pod["volumes"] for k in v if k != "name"} <= RESTRICTED_VOLUMES
    for container in pod["containers"]:
        context = {**pod["securityContext"], **container["securityContext"]}
        assert context["runAsNonRoot"] is True and context.get("runAsUser") != 0
        assert context["allowPrivilegeEscalation"] is False and not context.get("privileged")
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert not container["securityContext"]["capabilities"].get("add")
        assert context["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
        assert context["readOnlyRootFilesystem"] is True and context["runAsGroup"] == 1000
        assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"]["limits"])
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert "/tmp" in writable  # flytekit's sandbox, with the root filesystem read-only
    assert [v["secret"]["defaultMode"] for v in pod["volumes"] if "secret" in v] == [0o400, 0o400]
    assert pod["automountServiceAccountToken"] is False
    # GetTask keeps answering through a rollout and a drain
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    # only propeller reaches the plaintext gRPC port, only Prometheus the metrics
    ingress = docs["NetworkPolicy"]["spec"]["ingress"]
    assert {p["port"] for rule in ingress for p in rule["ports"]} == {8000, 9090}
    grpc_from = next(r["from"] for r in ingress if r["ports"][0]["port"] == 8000)
    names = grpc_from[0]["podSelector"]["matchExpressions"][0]["values"]
    assert "flytepropeller" in names and "namespaceSelector" not in grpc_from[0]
    for doc in (docs["PodDisruptionBudget"], docs["NetworkPolicy"]):
        assert (
            doc["spec"].get("selector", doc["spec"].get("podSelector"))["matchLabels"]
            == deployment["spec"]["selector"]["matchLabels"]
        )


def test_on_sigterm_the_service_turns_not_serving_keeps_answering_for_the_drain_then_exits():
    """What a rolling restart needs: readiness fails at once, calls still arriving (before the pod leaves the
    Service's endpoints) are answered, and the process ends inside the pod's termination grace period."""
    import signal
    import socket
    import time

    import grpc
    from flyteidl.admin.agent_pb2 import ListAgentsRequest
    from flyteidl.service.agent_pb2_grpc import AgentMetadataServiceStub
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_SKYPILOT_", "CONNECTOR_", "_FSEC_"))}
    env = {
        **clean,
        "SKYPILOT_API_SERVER_ENDPOINT": "http://127.0.0.1:9",
        "CONNECTOR_PORT": str(ports[0]),
        "CONNECTOR_PROMETHEUS_PORT": str(ports[1]),
        "CONNECTOR_DRAIN_SECONDS": "4",
        "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "2",
    }
    service = subprocess.Popen([sys.executable, "-m", "agent_service"], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    channel = grpc.insecure_channel(f"127.0.0.1:{ports[0]}")
    try:
        grpc.channel_ready_future(channel).result(timeout=120)
        check = health_pb2_grpc.HealthStub(channel).Check
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        service.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        time.sleep(0.5)
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
        agents = AgentMetadataServiceStub(channel).ListAgents(ListAgentsRequest(), timeout=5).agents  # draining
        assert any(c.name == "skypilot" for a in agents for c in a.supported_task_categories)
        assert service.wait(timeout=20) == 0
        assert 4 <= time.monotonic() - stopped < 12
    finally:
        channel.close()
        service.kill()
