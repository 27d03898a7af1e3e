"""`pyflyte run` of SkyPilot tasks on the real bed: outputs, user errors, unplaceable requests. Their data (the
code bundle, inputs, outputs, checkpoints, files) goes through the bed's object store, as in a deployment."""

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import RAW_OUTPUT_ENV, queue_by_name, statuses, store_objects
from flytekit.tools.fast_registration import fast_package

from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
PYFLYTE = str(Path(sys.executable).parent / "pyflyte")
JOB_NAME = re.compile(r"flyte-local-[0-9a-f]{10}")


def pyflyte_command(*args: str) -> list:
    """`pyflyte run` with the run's data in the bed's object store."""
    return [PYFLYTE, "run", "--raw-output-data-prefix", os.environ[RAW_OUTPUT_ENV], *args]


def pyflyte_run(path: Path, workflow: str, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", **env_vars}  # keep rich from wrapping the messages we look for
    return subprocess.run(
        pyflyte_command(path.name, workflow, *args),
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_example_workflow_returns_the_value_computed_in_the_job():
    started = time.time()
    result = pyflyte_run(ROOT / "examples" / "hello.py", "hello_wf", "--name", "bed", "--times", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello bed hello bed hello bed" in result.stdout
    # the run ends clean: the object store's client sessions closed, not reported unclosed at exit
    assert "Unclosed" not in result.stdout + result.stderr, result.stderr
    name = JOB_NAME.search(result.stdout).group(0)  # the job reports its own SkyPilot task id
    assert statuses(name) == ["SUCCEEDED"]
    # through the object store: the code bundle pyflyte-fast-execute fetched, the inputs, the outputs
    written = {p.name for p in store_objects(started)}
    assert {"inputs.pb", "outputs.pb"} <= written, written
    bundle = Path(fast_package(ROOT / "examples", tempfile.mkdtemp())).name  # named after its files' digest
    assert [p for p in store_objects(0) if p.name == bundle and p.parent.name == "code"], bundle


def test_the_shared_directory_mode_runs_a_task_whose_data_and_code_stay_on_the_shared_filesystem():
    """A Slurm cluster on a shared filesystem needs no object store: a local raw-output prefix under
    FLYTE_SKYPILOT_SHARED_DIR, the code imported from the source root."""
    result = subprocess.run(
        [PYFLYTE, "run", "hello.py", "hello_wf", "--name", "nfs", "--times", "1"],
        cwd=ROOT / "examples",
        env={**os.environ, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0 and "hello nfs (from SkyPilot managed job" in result.stdout, result.stderr
    run_dir = Path(os.environ["FLYTE_SKYPILOT_SHARED_DIR"])
    name = JOB_NAME.search(result.stdout).group(0)
    assert [p for p in run_dir.glob("flyte-run-*/*/skypilot-launch.json") if name in p.read_text()]


def test_unplaceable_task_fails_with_skypilots_reason_and_leaves_no_job():
    result = pyflyte_run(ROOT / "tests" / "bed" / "tasks.py", "h100_wf")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SkyPilot cannot run this request" in out and "H100" in out, out
    assert "\x1b[" not in out.split("SkyPilot cannot run this request", 1)[1]  # SkyPilot's colours stripped
    # SkyPilot records the request as a job that failed its prechecks: nothing is left running or queued.
    name = JOB_NAME.search(out).group(0)
    assert statuses(name) == ["FAILED_PRECHECKS"]


def test_multi_node_task_reaches_the_head_and_returns_its_values_a_file_a_directory_and_a_secret(tmp_path):
    token = uuid.uuid4().hex[:8]
    doc = tmp_path / "doc.txt"
    doc.write_text(f"quiet words {uuid.uuid4().hex[:6]}")
    value = f"bed-secret-{uuid.uuid4().hex}"  # the connector's value of the secret the task names
    started = time.time()
    result = pyflyte_run(
        ROOT / "tests" / "bed" / "tasks.py", "ranks_wf", "--token", token, "--doc", str(doc), BED_TOKEN=value
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Node 1 (vm2, 127.0.0.2) reached node 0 (127.0.0.1) through MASTER_ADDR / MASTER_PORT.
    assert f"2 nodes: 0@127.0.0.1:{token} 1@127.0.0.2:{token}" in result.stdout, result.stdout
    assert "not the head" not in result.stdout
    assert statuses(JOB_NAME.search(result.stdout).group(0)) == ["SUCCEEDED"]
    # a FlyteFile in and a FlyteDirectory out, through the job and the object store
    [out] = [p.parent for p in store_objects(started) if p.name == "loud.txt"]
    assert (out / "loud.txt").read_text() == doc.read_text().upper()
    assert JOB_NAME.search((out / "where.txt").read_text())  # written inside the managed job
    # the secret reached the job (its digest was computed there) and nothing else: no output, log or document
    assert (out / "token.sha256").read_text() == hashlib.sha256(value.encode()).hexdigest()
    assert value not in result.stdout + result.stderr
    documents = [p for p in store_objects(started) if p.suffix in (".pb", ".json")]
    assert any(p.name == "skypilot-launch.json" for p in documents), documents
    leaked = [p for p in documents if value.encode() in p.read_bytes()]
    assert not leaked, leaked  # not in any inputs, outputs, error document or launch record


def test_an_unchanged_skypilot_yaml_runs_with_typed_inputs_and_outputs_through_the_store():
    model, started = f"m-{uuid.uuid4().hex[:6]}", time.time()
    result = pyflyte_run(ROOT / "tests" / "bed" / "yaml_tasks.py", "eval_wf", "--model", model, "--samples", "70")
    assert result.returncode == 0, result.stdout + result.stderr
    # sum(i % 7 for i in range(70)) / 70 == 3.0, computed by the YAML's `run` in the job, read back as a float
    assert "score=3.0" in result.stdout, result.stdout
    # the report the job wrote, uploaded to the store by the job's own step after the YAML's `run`
    [report] = [p for p in store_objects(started) if p.name == "report" and p.parent.name == "outputs"]
    assert report.read_text().strip() == f"model={model} samples=70 score=3.0"


@pytest.mark.xdist_group("heavy")
def test_tasks_naming_one_cluster_run_on_one_pool_created_on_first_use():
    import sky
    from sky import jobs

    cluster = f"flyte-bed-{uuid.uuid4().hex[:6]}"
    try:
        result = pyflyte_run(ROOT / "tests" / "bed" / "tasks.py", "cluster_wf", BED_CLUSTER=cluster)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"t1@\S*flyte-local-", result.stdout), result.stdout
        first = queue_by_name(JOB_NAME.search(result.stdout).group(0))
        assert [(r["status"].value, r["pool"]) for r in first] == [("SUCCEEDED", cluster)], first
        pools = sky.get(jobs.pool_status([cluster]))
        assert len(pools) == 1 and pools[0]["name"] == cluster  # left up for the next task naming it
        _the_next_task_runs_on_the_warm_pool_and_one_queued_behind_it_is_cancelled(cluster)
    finally:  # a pool with jobs still on it is not taken down: cancel them (again, for any launched meanwhile)
        wait_for(lambda: _cancel_live_jobs(cluster), 300, every=10, what="the pool's jobs to end")
        sky.get(jobs.pool_down([cluster], purge=True))


def _cancel_live_jobs(pool: str) -> bool:
    """Cancels the pool's jobs still live; True once none is."""
    import sky
    from sky import jobs

    live = [r["job_id"] for r in _pool_jobs(pool) if not r["status"].is_terminal()]
    if live:
        sky.get(jobs.cancel(job_ids=live))
    return not live


def _pool_jobs(pool: str):
    import sky
    from sky import jobs

    return [
        r
        for r in sky.get(jobs.queue_v2(refresh=False, all_users=True, fields=["job_id", "status", "pool"]))[0]
        if r["pool"] == pool
    ]


def _the_next_task_runs_on_the_warm_pool_and_one_queued_behind_it_is_cancelled(pool: str):
    """A second cluster_name task runs on the pool's warm worker (RUNNING, then deleted as Flyte aborts it); a
    task queued behind it (PENDING: the one worker is busy) is cancelled by its delete, leaving the first alone."""
    from flyteidl.core.execution_pb2 import TaskExecution
    from tasks import sleep

    from flytekitplugins.skypilot import SkyPilotConnector
    from tests.support import delete, prepare, run

    connector = SkyPilotConnector()

    def on_pool(key: str):
        template, prefix, metadata = prepare(sleep, {"seconds": 600})
        template.custom[key] = pool  # as SkyPilot(cluster_name=...) / SkyPilot(pool=...) serialise it
        return run(connector.create(template, prefix, None, metadata))

    # a connector process that has not seen the pool yet: it finds it in SkyPilot and launches on it (the launch
    # follows the create in the background, as while a pool is created)
    busy = on_pool("cluster_name")
    wait_for(lambda: statuses(busy.job_name) == ["RUNNING"], 600, what="RUNNING", show=lambda: statuses(busy.job_name))
    assert [r["pool"] for r in queue_by_name(busy.job_name)] == [pool]
    queued = on_pool("pool")  # the pool's one worker is busy: SkyPilot keeps this job PENDING
    wait_for(
        lambda: statuses(queued.job_name) == ["PENDING"], 300, what="PENDING", show=lambda: statuses(queued.job_name)
    )
    wait_for(
        lambda: run(connector.get(queued)).phase == TaskExecution.QUEUED,
        120,
        what="QUEUED",
        show=lambda: run(connector.get(queued)).message,
    )
    delete(connector, queued)
    wait_for(
        lambda: statuses(queued.job_name) == ["CANCELLED"],
        300,
        what="CANCELLED",
        show=lambda: statuses(queued.job_name),
    )
    assert wait_for(lambda: run(connector.get(queued)).phase == TaskExecution.ABORTED, 30, what="ABORTED")
    assert statuses(busy.job_name) == ["RUNNING"]  # cancelling the queued task left the running one alone
    delete(connector, busy)  # a RUNNING task aborted by Flyte
    wait_for(
        lambda: statuses(busy.job_name) == ["CANCELLED"], 300, what="CANCELLED", show=lambda: statuses(busy.job_name)
    )
    aborted = wait_for(lambda: (r := run(connector.get(busy))).phase == TaskExecution.ABORTED and r, 30, what="ABORTED")
    assert "the task was aborted" in aborted.message  # Flyte's own abort, not a cancel behind its back
    delete(connector, busy)  # idempotent: a second delete of an ended job is fine


def _saved_step(token: str, since: float):
    """(job name, step) of the newest checkpoint the run with this token saved in the store, if any."""
    for path in (p for p in store_objects(since) if p.parent.name == "checkpoint_output"):
        text = path.read_text(errors="replace")
        if text.startswith(f"{token}|"):
            return JOB_NAME.search(text).group(0), int(text.rsplit("|", 1)[1])
    return None


def test_a_job_recovered_after_losing_its_node_resumes_from_its_last_checkpoint():
    token, started = uuid.uuid4().hex[:8], time.time()
    env = {**os.environ, "COLUMNS": "400"}
    run = subprocess.Popen(
        pyflyte_command("tasks.py", "checkpoint_wf", "--token", token, "--n", "25"),
        cwd=ROOT / "tests" / "bed",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        name, step = wait_for(
            lambda: (s := _saved_step(token, started)) and s[1] >= 3 and s, 600, what="checkpoint step 3"
        )
        # As a preemption would: the job's Slurm allocation disappears behind SkyPilot's back.
        allocations = subprocess.run(["squeue", "-h", "-o", "%i|%j"], capture_output=True, text=True).stdout
        ids = [line.split("|")[0] for line in allocations.splitlines() if f"|{name}-" in line]
        assert ids, allocations
        subprocess.run(["scancel", *ids], check=True)
        out, _ = run.communicate(timeout=900)
    finally:
        run.kill()
    assert run.returncode == 0, out
    resumed = int(re.search(r"counted to 25, resumed at (\d+)", out).group(1))
    assert resumed >= step, out  # not from step 0: from the checkpoint saved before the node was lost
    record = queue_by_name(name)[0]
    assert record["status"].value == "SUCCEEDED" and record["recovery_count"] >= 1, record  # SkyPilot recovered it
