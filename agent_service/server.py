"""`python -m agent_service.server`: flytekit's connector services (the same servicers `pyflyte serve connector`
serves) with a lifecycle for rolling restarts. Started by `python -m agent_service` once the settings are valid.

- Ready only when serving: the gRPC health service says SERVING once the port is open (SkyPilot's SDK is
  imported before, see runtime.WARM_UP_ENV), which the Deployment's probes read.
- Graceful on SIGTERM: health goes NOT_SERVING at once, the server keeps answering for CONNECTOR_DRAIN_SECONDS
  (while Kubernetes takes the pod out of the Service's endpoints), then stops taking calls and gives the ones in
  flight CONNECTOR_SHUTDOWN_GRACE_SECONDS to finish. Any replica serves any task from its resource meta, so
  propeller's next call goes to another replica and fails nothing.
"""

import asyncio
import os
import signal
import sys
from concurrent import futures

import grpc
from flyteidl.service import agent_pb2
from flyteidl.service.agent_pb2_grpc import (
    add_AgentMetadataServiceServicer_to_server,
    add_AsyncAgentServiceServicer_to_server,
    add_SyncAgentServiceServicer_to_server,
)
from flytekit.extend.backend.connector_service import (
    AsyncConnectorService,
    ConnectorMetadataService,
    SyncConnectorService,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def _health(server: grpc.aio.Server, workers: int) -> health.HealthServicer:
    servicer = health.HealthServicer(
        experimental_non_blocking=True, experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=workers)
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def _serving(servicer: health.HealthServicer) -> None:
    for service in agent_pb2.DESCRIPTOR.services_by_name.values():
        servicer.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
    servicer.set(health.SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)


async def serve(port: int, prometheus_port: int, workers: int, drain: float, grace: float) -> None:
    from prometheus_client import start_http_server

    import flytekitplugins.skypilot  # noqa: F401  registers the connector (and warms SkyPilot up)

    start_http_server(prometheus_port)
    server = grpc.aio.server(futures.ThreadPoolExecutor(max_workers=workers))
    add_AsyncAgentServiceServicer_to_server(AsyncConnectorService(), server)
    add_SyncAgentServiceServicer_to_server(SyncConnectorService(), server)
    add_AgentMetadataServiceServicer_to_server(ConnectorMetadataService(), server)
    status = _health(server, workers)
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    _serving(status)
    print(f"agent_service: serving on {port} (metrics on {prometheus_port})", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    status.enter_graceful_shutdown()  # NOT_SERVING: readiness fails, new calls go elsewhere
    print(f"agent_service: stopping; answering for {drain:g} s more, then {grace:g} s for calls in flight", flush=True)
    await asyncio.sleep(drain)
    await server.stop(grace)
    print("agent_service: stopped", flush=True)


def main() -> None:
    env = os.environ
    asyncio.run(
        serve(
            port=int(env.get("CONNECTOR_PORT", "8000")),
            prometheus_port=int(env.get("CONNECTOR_PROMETHEUS_PORT", "9090")),
            workers=int(env.get("CONNECTOR_WORKERS", "10")),
            drain=float(env.get("CONNECTOR_DRAIN_SECONDS", "10")),
            grace=float(env.get("CONNECTOR_SHUTDOWN_GRACE_SECONDS", "15")),
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
