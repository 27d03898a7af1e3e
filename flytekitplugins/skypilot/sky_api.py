"""The only module that uses the SkyPilot SDK: its parsers, and launch, request status, queue, cancel.

Every call here is blocking and talks to the SkyPilot API server named by SKYPILOT_API_SERVER_ENDPOINT (or, through
a `Client` bound to a stand-in SDK, to that stand-in).
Where SkyPilot is not installed (a job's image: `pip install flytekitplugins-skypilot` without `[sky]`),
`available()` is False, the offline checks fall back to the plugin's own (own_checks.py), and everything else
raises `SkyPilotNotInstalled`, which names the extra to install.
Errors leave this module as one of three kinds: `SkyPilotUnavailable` (the server cannot be reached or
refuses us), `LaunchFailed` (SkyPilot rejected or could not run a launch request) or `LaunchCancelled`.
"""

import copy
import difflib
import functools
import importlib.util
import io
import json
import os
import re
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence

from flytekit import logger

from . import metrics, own_checks

# A connector must never start an API server of its own: a missing endpoint is a deployment error.
os.environ["SKYPILOT_DISABLE_LOCAL_API_SERVER"] = "1"

# What get() needs of a managed job, and no more (queue_v2 leaves failure_reason and infra out by default).
QUEUE_FIELDS = [
    "job_id",
    "job_name",
    "status",
    "failure_reason",
    "details",
    "recovery_count",
    "infra",
    "submitted_at",
    "start_at",
    "end_at",
    "job_duration",
    "cloud",
    "region",
    "zone",
    "cluster_resources_full",
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_IMPORT = threading.Lock()  # SkyPilot's package has import cycles: two threads importing it at once break


class SkyPilotNotInstalled(ImportError):
    """SkyPilot's package is not installed in this environment."""


_INSTALL_HINT = (
    "SkyPilot is not installed here: install the plugin with its SkyPilot client, "
    '`pip install "flytekitplugins-skypilot[sky]"` on an author\'s machine, or `[connector]` in the connector image'
)


class SkyPilotUnavailable(RuntimeError):
    """The SkyPilot API server cannot be reached, or refused our credentials."""


class LaunchFailed(RuntimeError):
    """SkyPilot rejected a launch request or could not carry it out; the message is SkyPilot's reason.

    `retryable` is False when the request itself is wrong or cannot be met (SkyPilot's validation and
    feasibility errors), True when the failure lies elsewhere (an API server error) and a retry may pass.
    """

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class LaunchCancelled(RuntimeError):
    """A launch request was cancelled before it created a job."""


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether SkyPilot's package is installed (looked up, not imported: a job's process never imports it)."""
    try:
        return importlib.util.find_spec("sky") is not None
    except (ImportError, ValueError):
        return False


def _sky() -> SimpleNamespace:
    """The parts of the SkyPilot SDK this plugin uses, imported once, under a lock; SkyPilotNotInstalled where
    SkyPilot is not installed."""
    if not available():
        raise SkyPilotNotInstalled(_INSTALL_HINT)
    with _IMPORT:
        import requests
        import sky
        from sky import catalog, exceptions, jobs
        from sky.server import common
        from sky.utils import common_utils, infra_utils, schemas

    return SimpleNamespace(
        sky=sky,
        jobs=jobs,
        exceptions=exceptions,
        common=common,
        requests=requests,
        catalog=catalog,
        common_utils=common_utils,
        infra_utils=infra_utils,
        schemas=schemas,
    )


def _sdk(override: Optional[SimpleNamespace]) -> SimpleNamespace:
    """SkyPilot's SDK, with the parts a stand-in API server provides (`sky`, `jobs`, ...) in place of its own."""
    real = _sky()
    return real if override is None else SimpleNamespace(**{**vars(real), **vars(override)})


# The calls below that talk to an API server: what a Client binds to one SDK.
SERVER_CALLS = (
    "launch",
    "request_states",
    "launched_job_ids",
    "launched_job_id",
    "cancel_request",
    "queue",
    "log_tail",
    "cancel_jobs",
    "cancel_by_name",
    "pool_exists",
    "pool_apply",
    "job_ids_by_name",
    "launch_request_named",
    "server_info",
    "enabled_infras",
    "optimizer_table",
)


class Client:
    """This module's API server calls on one SDK: SkyPilot's own (`sdk=None`), or a namespace standing in for
    parts of it (`benchmarks/fake_sdk.py`'s FakeApiServer.sdk()), so one connector runtime talks to one server.
    `client.launch(...)` is `launch(..., sdk=client.sdk)`, looked up when called."""

    def __init__(self, sdk: Optional[SimpleNamespace] = None) -> None:
        self.sdk = sdk

    def __getattr__(self, name: str) -> Callable:
        if name not in SERVER_CALLS:
            raise AttributeError(name)
        call = globals()[name]
        return call if self.sdk is None else functools.partial(call, sdk=self.sdk)


def warm_up() -> None:
    """Loads the SDK in the background, so the first CreateTask does not pay for the import."""
    if not available():
        logger.warning(_INSTALL_HINT)
        return
    threading.Thread(target=_sky, name="skypilot-sdk-import", daemon=True).start()


def clean(message: Any) -> str:
    """SkyPilot's text without terminal colour codes."""
    return _ANSI.sub("", str(message)).strip()


def endpoint() -> str:
    """The API server this process talks to."""
    return _sky().common.get_server_url()


# ---- SkyPilot's own parsers (offline) ----


def check_infra(infra: str) -> None:
    """Raises ValueError when SkyPilot (or, where it is not installed, the plugin) cannot parse an `infra` string."""
    if not available():
        return own_checks.check_infra(infra)
    _sky().infra_utils.InfraInfo.from_str(infra)


def check_pool_name(name: str) -> None:
    """Raises ValueError when SkyPilot would refuse `name` for a pool (or cluster)."""
    if not available():
        return own_checks.check_pool_name(name)
    sdk = _sky()
    try:
        sdk.common_utils.check_cluster_name_is_valid(name)
    except sdk.exceptions.InvalidClusterNameError as e:
        raise ValueError(clean(e)) from None


def check_task_yaml(config: Dict[str, Any]) -> Dict[str, Any]:
    """The task YAML dict as SkyPilot reads it (env and secret values as text, as `sky.Task.from_yaml` does);
    raises ValueError (with SkyPilot's did-you-mean) when it breaks SkyPilot's schema."""
    config = dict(config)
    for key in ("envs", "secrets"):
        if isinstance(config.get(key), dict):
            config[key] = {str(k): None if v is None else str(v) for k, v in config[key].items()}
        elif isinstance(config.get(key), list):
            config[key] = {str(k): None for k in config[key]}  # names only
    if not available():  # the plugin's own, coarser checks
        own_checks.check_task_yaml(config)
        return config
    sdk = _sky()
    sdk.common_utils.validate_schema(config, sdk.schemas.get_task_schema(), "SkyPilot rejects this task: ")
    resources = config.get("resources") or {}  # the task schema leaves `resources:` to its own schema
    sdk.common_utils.validate_schema(
        resources, sdk.schemas.get_resources_schema(), "SkyPilot rejects these resources: "
    )
    return config


# Clouds whose accelerator names come from the cluster (node labels, GRES), not from SkyPilot's catalog.
_CLUSTER_ACCELERATORS = ("Kubernetes", "Slurm", "SSH")


def check_task(config: Dict[str, Any]) -> None:
    """Raises ValueError naming the field unless SkyPilot accepts the task YAML dict (without `run`) offline:
    `sky.Task.from_yaml_config` (schema, resources, file mounts and storage), then for every resources candidate
    the accelerator names (SkyPilot's catalog), the job recovery strategy and the cost bound. Where SkyPilot is not
    installed, the plugin's own coarser checks."""
    if not available():
        own_checks.check_task_yaml(config)
        return
    problem = task_problem(config)
    if problem is not None:
        raise ValueError(f"{_culprit(config)}: SkyPilot refuses it: {problem}")


def task_problem(config: Dict[str, Any]) -> Optional[str]:
    """SkyPilot's reason for refusing the task YAML dict (without `run`), or None."""
    try:
        task = _sky().sky.Task.from_yaml_config({**copy.deepcopy(config), "run": "true"})
        for resources in task.resources:
            _check_candidate(resources)
    except Exception as e:  # SkyPilot refuses a bad spec with many kinds of error (ValueError, its own, asserts)
        return clean(e) or type(e).__name__
    return None


def _culprit(config: Dict[str, Any]) -> str:
    """The field (or `any_of[i]` / `ordered[i]` candidate) SkyPilot refuses on its own; else all the resources."""
    resources = config.get("resources") or {}
    for key, value in config.items():
        if key != "resources" and task_problem({key: value}) is not None:
            return key
    for key, value in resources.items():
        if key in ("any_of", "ordered") and isinstance(value, list):
            for i, candidate in enumerate(value):
                if task_problem({"resources": {key: [candidate]}}) is not None:
                    return f"{key}[{i}]"
        elif task_problem({"resources": {key: value}}) is not None:
            return key
    return ", ".join(resources) or "resources"


def _check_candidate(resources: Any) -> None:
    """What SkyPilot checks of one resources candidate only when it plans a launch, where it can be done offline."""
    for name in resources.to_yaml_config().get("accelerators") or {}:
        _check_accelerator_name(str(name), str(resources.cloud))
    strategy = (resources.job_recovery or {}).get("strategy")
    if strategy is not None:
        _check_recovery_strategy(str(strategy))
    cost = resources.max_hourly_cost
    if cost is not None and not (isinstance(cost, (int, float)) and 0 < cost < float("inf")):
        raise ValueError(f"max_hourly_cost must be a positive number of $/hour, got {cost!r}")


def _check_accelerator_name(name: str, cloud: str) -> None:
    known = catalog_accelerators()
    if known is None or cloud in _CLUSTER_ACCELERATORS or name.lower().startswith("tpu-"):
        return
    if name.lower() in known or len([k for k in known if name.lower() in k]) == 1:
        return  # SkyPilot's canonical spelling, or the one catalog name it completes to
    count = re.match(r"^(.+?)[xX](\d+)$", name)
    if count and count.group(1).lower() in known:
        hint = f"{known[count.group(1).lower()]}:{count.group(2)}"
    else:
        hint = " or ".join(map(repr, difflib.get_close_matches(name, list(known.values()), 2))) or "a catalog name"
    raise ValueError(
        f"accelerator {name!r} is not in SkyPilot's catalog (`sky show-gpus` lists them): use e.g. {hint!s}, written "
        '"<name>:<count>"; for accelerator names of a Kubernetes or Slurm cluster, set infra="k8s" / "slurm/<cluster>"'
    )


def _check_recovery_strategy(strategy: str) -> None:
    _sky()  # imports sky.jobs, which registers SkyPilot's recovery strategies
    from sky.utils import registry

    names = list(registry.JOBS_RECOVERY_STRATEGY_REGISTRY.keys())
    if strategy.lower() not in names:
        raise ValueError(
            f"job_recovery strategy {strategy!r} is not one of SkyPilot's: {', '.join(n.upper() for n in names)}"
        )


@functools.lru_cache(maxsize=1)
def catalog_accelerators() -> Optional[Dict[str, str]]:
    """SkyPilot's accelerator names (lower case -> its spelling) from the local copy of its catalog (the one
    `sky show-gpus` or a launch fetched), never fetched from here: a declaration makes no network call. None
    without a local copy: the names are then left to the launch."""
    import csv

    from sky.catalog import common as catalog_common

    _sky()
    path = catalog_common.get_catalog_path("common/accelerators.csv")
    try:
        with open(path, newline="") as f:
            return {row["AcceleratorName"].lower(): row["AcceleratorName"] for row in csv.DictReader(f)}
    except (OSError, KeyError) as e:
        logger.debug(f"no local copy of SkyPilot's accelerator catalog ({type(e).__name__}): names not checked")
        return None


def task_from_yaml(config: Dict[str, Any]) -> Any:
    """The `sky.Task` SkyPilot builds from a task YAML dict (its own validation included)."""
    return _sky().sky.Task.from_yaml_config(config)


# ---- calls to the API server ----


def _unavailable_errors() -> tuple:
    sdk = _sky()
    return (
        sdk.exceptions.ApiServerConnectionError,
        sdk.requests.exceptions.ConnectionError,
        sdk.requests.exceptions.Timeout,
    )


def _on_server(fn: Callable) -> Callable:
    """Turns the SDK's many ways of saying "no server" into one error that names the endpoint; counts and
    times every call for the connector's Prometheus metrics."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        start, outcome = time.monotonic(), "error"
        try:
            result = _unified(fn, *args, **kwargs)
            outcome = "ok"
            return result
        except SkyPilotUnavailable:
            outcome = "unavailable"
            raise
        finally:
            metrics.observe(fn.__name__, outcome, time.monotonic() - start)

    return call


def _unified(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _unavailable_errors() as e:
        raise SkyPilotUnavailable(
            f"SkyPilot API server {endpoint()} is unreachable or does not answer ({type(e).__name__}); check "
            "that it is running and that SKYPILOT_API_SERVER_ENDPOINT points at it"
        ) from None
    except (_sky().exceptions.ApiServerAuthenticationError, _sky().requests.exceptions.HTTPError) as e:
        status = getattr(getattr(e, "response", None), "status_code", 401)
        if status not in (401, 403):
            raise
        raise SkyPilotUnavailable(
            f"SkyPilot API server {endpoint()} refused the credentials; set SKYPILOT_SERVICE_ACCOUNT_TOKEN "
            "to a valid service-account token"
        ) from None
    except RuntimeError as e:
        if "local API server" not in str(e):
            raise
        # A loopback endpoint that does not answer makes the SDK try to start a server, which we forbid.
        raise SkyPilotUnavailable(
            f"SkyPilot API server {endpoint()} is not answering; check that it is running and that "
            "SKYPILOT_API_SERVER_ENDPOINT points at it"
        ) from None


@_on_server
def launch(
    task: Any, name: str, pool: Optional[str] = None, num_jobs: int = 1, sdk: Optional[SimpleNamespace] = None
) -> str:
    """Submits `task` as `num_jobs` managed jobs named `name` (each sees its SKYPILOT_JOB_RANK); returns the
    launch request id at once (the launch resolves later)."""
    try:
        return _sdk(sdk).jobs.launch(task, name=name, pool=pool, num_jobs=num_jobs, job_group=None)
    except (ValueError, TypeError) as e:  # validated by the server before the request is queued
        raise LaunchFailed(clean(e)) from None


@_on_server
def request_states(request_ids: Sequence[str], sdk: Optional[SimpleNamespace] = None) -> Dict[str, str]:
    """Status (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED) of each known request, in one call."""
    if not request_ids:
        return {}
    payloads = _sdk(sdk).sky.api_status(list(request_ids), all_status=True, fields=["request_id", "status"])
    return {p.request_id: str(p.status).rsplit(".", 1)[-1] for p in payloads}


@_on_server
def launched_job_ids(request_id: str, sdk: Optional[SimpleNamespace] = None) -> List[int]:
    """The job ids a finished launch request created, by SKYPILOT_JOB_RANK; raises LaunchFailed /
    LaunchCancelled otherwise."""
    sdk = _sdk(sdk)
    try:
        result = sdk.sky.get(request_id)
    except sdk.exceptions.RequestCancelled:
        raise LaunchCancelled(f"launch request {request_id} was cancelled") from None
    except _unavailable_errors():
        raise
    except Exception as e:  # the server re-raises the launch's own exception here
        raise LaunchFailed(f"{type(e).__name__}: {clean(e)}", retryable=not _is_request_error(e)) from None
    job_ids = result[0] if isinstance(result, tuple) else result  # older servers return a bare id
    if not isinstance(job_ids, (list, tuple)):
        job_ids = [] if job_ids is None else [job_ids]
    if not job_ids:
        raise LaunchFailed(f"launch request {request_id} finished without creating a job")
    return [int(j) for j in job_ids]


def launched_job_id(request_id: str, sdk: Optional[SimpleNamespace] = None) -> int:
    """The job id a finished single-job launch request created."""
    return launched_job_ids(request_id, sdk=sdk)[0]


def _is_request_error(error: Exception) -> bool:
    """Whether SkyPilot failed the launch because of the request itself (retrying the same cannot help)."""
    e = _sky().exceptions
    permanent = (ValueError, TypeError, e.ResourcesUnavailableError, e.NotSupportedError, e.InvalidSkyPilotConfigError)
    return isinstance(error, permanent)


@_on_server
def cancel_request(request_id: str, wait_seconds: float = 3.0, sdk: Optional[SimpleNamespace] = None) -> None:
    """Aborts a launch request still queued or running in the API server."""
    _wait(_sdk(sdk).sky.api_cancel(request_id, silent=True), wait_seconds, sdk)


@_on_server
def queue(job_ids: Sequence[int], sdk: Optional[SimpleNamespace] = None) -> Dict[int, Dict[str, Any]]:
    """Records of these managed jobs, by job id, in one queue_v2 call."""
    if not job_ids:
        return {}
    sdk = _sdk(sdk)
    request = sdk.jobs.queue_v2(refresh=False, all_users=True, job_ids=list(job_ids), fields=QUEUE_FIELDS)
    out = {}
    for record in sdk.sky.get(request)[0]:
        rec = {k: record.get(k) for k in QUEUE_FIELDS}
        rec["status"] = getattr(rec["status"], "value", rec["status"])
        if rec.get("failure_reason"):
            rec["failure_reason"] = clean(rec["failure_reason"])
        out[int(rec["job_id"])] = rec
    return out


@_on_server
def log_tail(job_id: int, lines: int, sdk: Optional[SimpleNamespace] = None) -> str:
    """The last `lines` lines of a managed job's own log (not the controller's)."""
    out = io.StringIO()
    _sdk(sdk).jobs.tail_logs(job_id=job_id, follow=False, tail=lines, output_stream=out)
    return clean(out.getvalue())


@_on_server
def cancel_jobs(job_ids: List[int], wait_seconds: float = 6.0, sdk: Optional[SimpleNamespace] = None) -> None:
    """Cancels managed jobs (a no-op for unknown or finished ones); waits briefly for SkyPilot to accept."""
    if job_ids:
        _wait(_sdk(sdk).jobs.cancel(job_ids=job_ids), wait_seconds, sdk)


@_on_server
def cancel_by_name(job_name: str, wait_seconds: float = 6.0, sdk: Optional[SimpleNamespace] = None) -> None:
    """Cancels the managed jobs named `job_name`, if there are any."""
    _wait(_sdk(sdk).jobs.cancel(name=job_name), wait_seconds, sdk)


def _wait(request_id: str, seconds: float, sdk: Optional[SimpleNamespace]) -> None:
    deadline = time.monotonic() + seconds
    while deadline - time.monotonic() > 1.0:  # a status call can take a second or more on a busy server
        if request_states([request_id], sdk=sdk).get(request_id) not in ("PENDING", "RUNNING"):
            return
        time.sleep(0.5)


# ---- pools (cluster_name) ----


@_on_server
def pool_exists(pool: str, sdk: Optional[SimpleNamespace] = None) -> bool:
    """Whether SkyPilot knows a pool of this name (in any state: a pool being created counts)."""
    sdk = _sdk(sdk)
    return bool(sdk.sky.get(sdk.jobs.pool_status([pool])))


@_on_server
def pool_apply(task: Any, pool: str, sdk: Optional[SimpleNamespace] = None) -> str:
    """Asks SkyPilot to create the pool `pool` from `task` (its `pool:` section says how many workers)."""
    sdk = _sdk(sdk)
    from sky.serve import serve_utils

    return sdk.jobs.pool_apply(task, pool, mode=serve_utils.UpdateMode.ROLLING)


@_on_server
def job_ids_by_name(job_name: str, sdk: Optional[SimpleNamespace] = None) -> List[int]:
    """The managed jobs named `job_name`, found through SkyPilot's queue."""
    sdk = _sdk(sdk)
    request = sdk.jobs.queue_v2(refresh=False, all_users=True, name_match=job_name, fields=["job_id", "job_name"])
    return sorted(int(r["job_id"]) for r in sdk.sky.get(request)[0] if r["job_name"] == job_name)


@_on_server
def launch_request_named(job_name: str, sdk: Optional[SimpleNamespace] = None) -> Optional[str]:
    """The launch request still in flight (queued or running in the API server) for a managed job of this name."""
    payloads = _sdk(sdk).sky.api_status(None, all_status=False, fields=["request_id", "name", "request_body"])
    for payload in payloads:
        if payload.name == "sky.jobs.launch" and _body_name(payload.request_body) == job_name:
            return payload.request_id
    return None


def _body_name(request_body: Optional[str]) -> Optional[str]:
    try:
        return json.loads(request_body or "{}").get("name")
    except (ValueError, AttributeError):
        return None


# ---- the API server itself (preflight) ----


@_on_server
def server_info(sdk: Optional[SimpleNamespace] = None) -> Dict[str, Any]:
    """The API server's health answer (status, version, api_version), fetched with the client's credentials."""
    sdk = _sdk(sdk)
    info = sdk.sky.api_info()
    return {
        "status": str(getattr(info, "status", "")),
        "version": getattr(info, "version", None),
        "api_version": getattr(info, "api_version", None),
        "client_version": sdk.sky.__version__,
    }


@_on_server
def enabled_infras(sdk: Optional[SimpleNamespace] = None) -> List[str]:
    """The infras this API server can launch on (`sky check` must have enabled them)."""
    sdk = _sdk(sdk)
    from sky.client import sdk as client

    return [str(name) for name in sdk.sky.get(client.enabled_clouds(expand=True))]


def hourly_price(
    cloud: str, instance_type: str, use_spot: bool, region: Optional[str], zone: Optional[str]
) -> Optional[float]:
    """SkyPilot's catalog price of one instance per hour, or None where it has none (Slurm, Kubernetes, ...)."""
    sdk = _sky()
    try:
        return float(sdk.catalog.get_hourly_cost(instance_type, use_spot, region, zone, clouds=cloud.lower()))
    except Exception as e:  # no catalog entry, or a catalog that cannot be fetched: the cost is unknown
        logger.debug(f"no SkyPilot price for {cloud} {instance_type} ({type(e).__name__}: {e})")
        return None


@_on_server
def optimizer_table(task: Any, sdk: Optional[SimpleNamespace] = None) -> str:
    """SkyPilot's optimizer report for `task` ("Considered resources" and the chosen row), asked of the API
    server; launches nothing. Raises LaunchFailed with SkyPilot's reason when nothing can run it."""
    import io

    sdk = _sdk(sdk)
    from sky.client import sdk as client

    with sdk.sky.Dag() as dag:
        dag.add(task)
    out = io.StringIO()
    try:
        client.stream_and_get(client.optimize(dag), output_stream=out)
    except (sdk.exceptions.ResourcesUnavailableError, sdk.exceptions.NoCloudAccessError, ValueError) as e:
        raise LaunchFailed(clean(e)) from None
    return clean(out.getvalue())
