"""`python -m agent_service.preflight`: checks, in order, what a first SkyPilot task needs.

    python -m agent_service.preflight --connector 127.0.0.1:8000 [--run-job] [--infra slurm/mycluster]

1. the connector answers gRPC (health) and lists the `skypilot` task type;
2. the SkyPilot API server (SKYPILOT_API_SERVER_ENDPOINT) is reachable, healthy and of a compatible version;
3. it accepts the service-account token (an authenticated request);
4. it can launch somewhere (its enabled infras);
5. with --run-job: a tiny managed job (`echo`) goes through the connector end to end.
Each check prints PASS or FAIL with what to fix; the exit status is the number of failed checks.
"""

import argparse
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


def job_check(address: str, infra: str) -> Check:
    def run_job() -> str:
        from .smoke import run_smoke_job

        return run_smoke_job(address, infra)

    return ("a tiny managed job runs end to end", run_job)


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
    parser.add_argument("--connector", default="127.0.0.1:8000", help="host:port of the connector's gRPC service")
    parser.add_argument("--run-job", action="store_true", help="also run a tiny managed job through the connector")
    parser.add_argument(
        "--infra", default="", help='where the job runs, e.g. "slurm/mycluster" (default: SkyPilot picks)'
    )
    args = parser.parse_args(argv)
    checks = connector_checks(args.connector) + api_server_checks(args.infra)
    if args.run_job:
        checks.append(job_check(args.connector, args.infra))
    return run(checks)


if __name__ == "__main__":
    sys.exit(main())
