"""Test-bed shims for the bed's API server venv (loaded by bed_offline_probe.pth there only).

1. Point SkyPilot's internet probe at loopback. SkyPilot's jobs controller refuses to
   poll a job until a HEAD to one of sky.backends.backend_utils._TEST_IP_LIST (8.8.8.8,
   1.1.1.1) succeeds. This machine may not reach them, so the list is replaced by the API
   server's own health URL as the module is imported, and the probe given 20 s instead of
   SkyPilot's 0.5-2 s: on the busy 2-core bed the API server can take seconds to answer, and a
   missed probe fails pool status calls ("Failed to refresh pools status due to network error").
2. SkyPilot 0.14.1 imports networkx lazily from concurrent request threads (sky/dag.py);
   two launches at once on a freshly started server can collide inside networkx
   ("KeyError: Algorithm already exists in dispatch namespace"). The bed starts fresh
   servers and launches concurrently, so the API server imports it up front.
3. A jobs controller running a job on a pool worker calls its own API server (`sdk.exec`),
   which first checks /api/health with a 2.5 s timeout. When the busy 2-core bed misses it,
   SkyPilot 0.14.1 keeps the worker assigned to the failed job, which then waits for a free
   worker forever, and so does every job behind it. The controllers here wait up to 60 s
   for their API server's health answer instead (not the `sky` command: `sky api start`
   asks first whether a server already runs).
4. The API server's own process runs at nice -10, the processes it starts (request workers, jobs
   controllers and their helpers) back at 0: on two cores shared with a dozen clusters setting up,
   its event loop otherwise stalled for up to 50 s and health checks went unanswered for minutes
   (bed.sh runs the cluster's side at nice 10). In a deployment the clusters are other machines.
"""

import importlib.abc
import os
import sys
import time

_URL = "@PROBE_URL@"


def _probe_loopback(module):
    def check_network_connection():
        import requests

        try:
            requests.head(_URL, timeout=20)
        except (requests.Timeout, requests.exceptions.ConnectionError) as e:
            raise module.exceptions.NetworkError("Could not refresh the cluster. Network seems down.") from e

    module._TEST_IP_LIST = [_URL]
    module.check_network_connection = check_network_connection


def _patient_health_check(module):
    answer = module.get_api_server_status

    def get_api_server_status(endpoint=None):
        if os.path.basename(sys.argv[0]) == "sky":
            return answer(endpoint)
        deadline = time.monotonic() + 60
        while True:
            info = answer(endpoint)
            if info.status != module.ApiServerStatus.UNHEALTHY or time.monotonic() > deadline:
                return info
            time.sleep(2)

    module.get_api_server_status = get_api_server_status


_PATCHES = {"sky.backends.backend_utils": _probe_loopback, "sky.server.common": _patient_health_check}


class _BedShims(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


def _server_first():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return
    try:
        if b"sky.server.server" in argv and os.geteuid() == 0:
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        elif os.getpriority(os.PRIO_PROCESS, 0) < 0:  # started by the server: inherited its -10
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass


_server_first()  # (shim 4)

if not any(isinstance(f, _BedShims) for f in sys.meta_path):
    sys.meta_path.insert(0, _BedShims())

try:
    import networkx  # noqa: F401  (shim 2)
except ImportError:
    pass
