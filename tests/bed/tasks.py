"""Tasks the real-bed tests run as SkyPilot managed jobs (on the host: the bed's Slurm has no containers)."""

import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Tuple

from flytekit import current_context, task, workflow
from flytekit.exceptions.user import FlyteRecoverableException
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from flytekitplugins.skypilot import SkyPilot, node_info

BED = dict(infra="slurm/localcluster", cpus="1+", on_host=True)


@task(task_config=SkyPilot(**BED))
def repeat(word: str, times: int) -> str:
    return "-".join([word] * times) + f"@{os.environ['SKYPILOT_TASK_ID']}"


@task(task_config=SkyPilot(**BED), retries=1)
def square(i: int) -> int:
    """A map_task element: 13 fails recoverably on its first attempt, 12 runs until cancelled. The markers' place
    comes from the execution's envs (BED_MARKERS), as `pyflyte run --remote --envs` would set it."""
    marker = Path(os.environ["BED_MARKERS"]) / f"item-{i}"
    if i == 13 and not marker.exists():
        marker.touch()
        raise FlyteRecoverableException("item 13: the service was not ready")
    if i == 12:
        time.sleep(900)
    return i * i


@task(task_config=SkyPilot(**BED))
def sleep(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@task(task_config=SkyPilot(infra="slurm/localcluster", accelerators="H100:8", on_host=True))
def needs_h100() -> int:
    return 1


@workflow
def h100_wf() -> int:
    return needs_h100()


@task(task_config=SkyPilot(**BED, num_nodes=2, secrets=["BED_TOKEN"]))
def gather_ranks(token: str, doc: FlyteFile) -> Tuple[str, FlyteDirectory]:
    """Every node reaches the head over MASTER_ADDR:MASTER_PORT, as torch.distributed would; the head answers.
    Flyte's data handling rides along: a FlyteFile in, a FlyteDirectory out, and the digest of a secret the job
    got by name (the secret itself must appear nowhere)."""
    node = node_info()
    assert os.environ["WORLD_SIZE"] == str(node.num_nodes) and os.environ["NODE_RANK"] == str(node.rank)
    port = int(os.environ["MASTER_PORT"])
    if not node.is_head:
        for _ in range(60):
            try:
                with socket.create_connection((os.environ["MASTER_ADDR"], port), timeout=5) as s:
                    s.sendall(f"{node.rank}@{node.ips[node.rank]}:{token}".encode())
                return "not the head: this value must not become the task's output", FlyteDirectory(tempfile.mkdtemp())
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"node {node.rank} could not reach the head at {os.environ['MASTER_ADDR']}:{port}")
    with socket.create_server((node.head_ip, port)) as server:
        server.settimeout(120)
        seen = [f"0@{node.head_ip}:{token}"]
        for _ in range(node.num_nodes - 1):
            conn, _ = server.accept()
            with conn:
                seen.append(conn.recv(1024).decode())
    out = Path(tempfile.mkdtemp())
    (out / "loud.txt").write_text(Path(doc.download()).read_text().upper())
    (out / "where.txt").write_text(os.environ["SKYPILOT_TASK_ID"])
    (out / "token.sha256").write_text(hashlib.sha256(os.environ["BED_TOKEN"].encode()).hexdigest())
    said = f"{node.num_nodes} nodes: " + " ".join(sorted(seen)) + f" ({os.environ['SKYPILOT_TASK_ID']})"
    return said, FlyteDirectory(str(out))


@task(task_config=SkyPilot(**BED, num_nodes=2), retries=3)
def fail_on_node_1() -> int:
    print("checked the input: about to give up", flush=True)
    if node_info().rank == 1:
        raise ValueError("node 1 cannot go on")
    return 0


@workflow
def ranks_wf(token: str, doc: FlyteFile) -> Tuple[str, FlyteDirectory]:
    return gather_ranks(token=token, doc=doc)


CLUSTER = os.environ.get("BED_CLUSTER", "flyte-bed-warm")  # the test names a fresh one per run


@task(task_config=SkyPilot(**BED, cluster_name=CLUSTER))
def on_cluster(step: str) -> str:
    return f"{step}@{os.environ['SKYPILOT_TASK_ID']}"


@workflow
def cluster_wf() -> str:
    return on_cluster(step="t1")  # creates the pool; the test's next task on it finds it warm


@task(task_config=SkyPilot(**BED))
def count_with_checkpoints(token: str, n: int) -> str:
    """Counts to n, one step every 3 s, saving a Flyte checkpoint after each; resumes from the last one."""
    checkpoint = current_context().checkpoint
    previous = checkpoint.read()
    start = int(previous.decode().rsplit("|", 1)[1]) if previous else 0
    for step in range(start, n):
        time.sleep(3)
        checkpoint.write(f"{token}|{os.environ['SKYPILOT_TASK_ID']}|{step + 1}".encode())
    return f"counted to {n}, resumed at {start}"


@workflow
def checkpoint_wf(token: str, n: int) -> str:
    return count_with_checkpoints(token=token, n=n)
