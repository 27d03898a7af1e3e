"""`python -m agent_service.preflight`: checks, in order, what a first SkyPilot task needs.

    python -m agent_service.preflight --connector 127.0.0.1:8000 [--run-job] [--infra slurm/mycluster]
    python -m agent_service.preflight --propeller-config propeller.yaml [--served-by ID] [--routing-only]

0. with --propeller-config (propeller's configuration: files, or the ConfigMap's YAML, merged as propeller
   merges them): where flytepropeller 1.16 and Flyte's v2 backend send each kind of SkyPilot template, failing
   with the key to change when it is not this connector (agent_service/routing.py);
1. the connector answers gRPC (health) and lists the `skypilot` task type;
2. the SkyPilot API server (SKYPILOT_API_SERVER_ENDPOINT) is reachable, healthy and of a compatible version;
3. it accepts the service-account token (an authenticated request);
4. it can launch somewhere (its enabled infras);
5. jobs can reach Flyte's object store with the storage access the connector gives them (with --storage-prefix:
   a probe object written, read back and removed under it, with that access alone);
6. with --run-job: a tiny managed job (`echo`) goes through the connector end to end.
Each check prints PASS or FAIL with what to fix; the exit status is the number of failed checks.
"""

import argparse
import os
import sys
import time
from typing import Callable, List, Tuple

import grpc

from flytekitplugins.skypilot import sky_api

Check = Tuple[str, Callable[[], str]]


def connector_checks(address: str) -> List[Check]:
    channel = grpc.insecure_channel(address)

    def health() -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as e:
            raise RuntimeError(
                f"no gRPC answer at {address} ({e.code().name}): is `python -m agent_service` "
                "(pyflyte serve connector) running there, and the address right?"
            ) from None
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(
                f"the connector at {address} is {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"
            )
        return f"{address} SERVING"

    def task_type() -> str:
        from flyteidl.admin.agent_pb2 import ListAgentsRequest
        from flyteidl.service.agent_pb2_grpc import AgentMetadataServiceStub

        agents = AgentMetadataServiceStub(channel).ListAgents(ListAgentsRequest(), timeout=10).agents
        types = sorted({c.name for a in agents for c in a.supported_task_categories})
        if "skypilot" not in types:
            raise RuntimeError(
                f"the connector serves {types}, not `skypilot`: install flytekitplugins-skypilot "
                "in the connector's image"
            )
        return f"task types {types}"

    return [("connector answers gRPC health", health), ("connector serves the `skypilot` task type", task_type)]


def api_server_checks(infra_hint: str = "") -> List[Check]:
    def reachable() -> str:
        info = sky_api.server_info()
        if "HEALTHY" not in info["status"].upper():
            raise RuntimeError(f"the API server at {sky_api.endpoint()} is {info['status']}")
        server, client = str(info["version"]), str(info["client_version"])
        if server.split(".")[:2] != client.split(".")[:2]:
            raise RuntimeError(
                f"the API server runs SkyPilot {server}, the connector's client {client}: use the "
                "same minor version on both (SkyPilot supports only limited skew)"
            )
        return f"{sky_api.endpoint()}: SkyPilot {server} (client {client}, API {info['api_version']})"

    def infras() -> str:
        names = sky_api.enabled_infras()  # authenticated: a refused token fails here
        if not names:
            raise RuntimeError(
                "the API server has no enabled infra: run `sky check` on it with credentials "
                "for a cloud, Kubernetes or Slurm"
            )
        if infra_hint and not any(infra_hint.lower().startswith(n.lower().split("/")[0]) for n in names):
            raise RuntimeError(f"{infra_hint} is not among the enabled infras {names}")
        return f"the token is accepted; enabled infras: {', '.join(names)}"

    return [
        ("SkyPilot API server reachable, compatible", reachable),
        ("API server accepts the credentials and can launch", infras),
    ]


def storage_check(prefix: str) -> Check:
    def storage() -> str:
        from flytekitplugins.skypilot.settings import ConnectorSettings

        connector = ConnectorSettings.from_env()
        access = connector.storage_access()  # a storage secret that is not there fails here, naming it
        given = ", ".join(connector.storage_variables()) or "no storage variables"
        if not prefix:
            if not access:
                raise RuntimeError(
                    "jobs get no storage access: set FLYTE_SKYPILOT_STORAGE_SECRETS (and, for an S3-compatible "
                    "store, FLYTE_SKYPILOT_STORAGE_ENDPOINT), or pass --storage-prefix s3://<bucket>/<path> to "
                    "prove that the clusters' own identity reaches the store"
                )
            return f"jobs get {given}; pass --storage-prefix to probe the store with them"
        return f"jobs get {given}: {probe_as_a_job(prefix, access)}"

    return ("jobs can reach the object store", storage)


def probe_as_a_job(prefix: str, access: dict) -> str:
    """The probe in a process that has only what a job gets (none of the connector's own storage settings)."""
    import subprocess
    import tempfile

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.mkdtemp(), **access}
    probe = [sys.executable, "-m", "flytekitplugins.skypilot.storage_probe", prefix]
    result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise RuntimeError(
            f"with what jobs get, {prefix} cannot be written and read: {error} (fix FLYTE_SKYPILOT_STORAGE_SECRETS "
            "/ FLYTE_SKYPILOT_STORAGE_ENDPOINT, or the credentials' permissions on the bucket)"
        )
    return result.stdout.strip()


def job_check(address: str, infra: str) -> Check:
    def run_job() -> str:
        from .smoke import run_smoke_job

        return run_smoke_job(address, infra)

    return ("a tiny managed job runs end to end", run_job)


def routing_check(configs: List[str], served_by: List[str], address: str) -> Check:
    def routing() -> str:
        from . import routing as propeller
        from .template_kinds import kinds

        cfg = propeller.load(configs)
        deployments = propeller.endpoints(cfg)
        served = served_by or _this_connector(deployments)
        ours, source = _our_listing(address)
        seen, problems = propeller.judge(cfg, served, ours, kinds())
        for line in seen + [p for p in problems if p.startswith("ADVICE")]:
            print(f"      {line}", flush=True)
        failures = [p for p in problems if not p.startswith("ADVICE")]
        if failures:
            raise RuntimeError("; ".join(failures))
        return f"every template kind reaches {', '.join(served)} (this connector: ListAgents {source})"

    return ("propeller routes SkyPilot templates to this connector", routing)


def _this_connector(deployments: dict) -> List[str]:
    """Without --served-by: the deployments named after SkyPilot, else defaultConnector (Flyte's flyteconnector)."""
    named = [d for d, endpoint in deployments.items() if "skypilot" in f"{d} {endpoint}".lower()]
    chosen = named or ["defaultConnector"]
    print(f"      taking {', '.join(chosen)} as this connector (--served-by to say which deployment it is)", flush=True)
    return chosen


def _our_listing(address: str):
    """This connector's ListAgents answer: from the connector at `address`, else from the plugin installed here."""
    from flytekitplugins.skypilot.connector import ConnectorRegistry

    from .routing import listing_of

    if address:
        from flyteidl.admin.agent_pb2 import ListAgentsRequest
        from flyteidl.service.agent_pb2_grpc import AgentMetadataServiceStub

        stub = AgentMetadataServiceStub(grpc.insecure_channel(address))
        return listing_of(stub.ListAgents(ListAgentsRequest(), timeout=10).agents), f"from {address}"
    return listing_of(ConnectorRegistry.list_connectors()), "of the plugin installed here"


def run(checks: List[Check]) -> int:
    failed = 0
    for name, check in checks:
        start = time.monotonic()
        try:
            detail = check()
            print(f"PASS  {name}: {detail} ({time.monotonic() - start:.1f} s)", flush=True)
        except Exception as e:  # every failure is reported with its fix, and the next check still runs
            failed += 1
            print(f"FAIL  {name}: {e}", flush=True)
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connector", default="", help="host:port of the connector's gRPC service (127.0.0.1:8000)")
    parser.add_argument(
        "--propeller-config",
        action="append",
        default=[],
        help="propeller's configuration: a file, or the ConfigMap's YAML (repeat for several, merged in order)",
    )
    parser.add_argument(
        "--served-by",
        action="append",
        default=[],
        help="the deployment in that configuration that is this connector: defaultConnector or a `connectors` key",
    )
    parser.add_argument("--routing-only", action="store_true", help="only the --propeller-config check")
    parser.add_argument("--run-job", action="store_true", help="also run a tiny managed job through the connector")
    parser.add_argument(
        "--infra", default="", help='where the job runs, e.g. "slurm/mycluster" (default: SkyPilot picks)'
    )
    parser.add_argument(
        "--storage-prefix", default="", help="a prefix in Flyte's object store (its raw-output prefix) to probe"
    )
    args = parser.parse_args(argv)
    if args.routing_only and not args.propeller_config:
        parser.error("--routing-only needs --propeller-config")
    checks = [routing_check(args.propeller_config, args.served_by, args.connector)] if args.propeller_config else []
    if not args.routing_only:
        address = args.connector or "127.0.0.1:8000"
        checks += connector_checks(address) + api_server_checks(args.infra) + [storage_check(args.storage_prefix)]
        if args.run_job:
            checks.append(job_check(address, args.infra))
    return run(checks)


if __name__ == "__main__":
    sys.exit(main())
