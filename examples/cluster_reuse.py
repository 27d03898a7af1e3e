"""Two tasks, one warm cluster: t1 and t2 name the same cluster and run on the same SkyPilot pool.

    pyflyte run --remote examples/cluster_reuse.py reuse_wf

The first task that names `team-a100` creates a pool of that name from its resources (one worker) if
SkyPilot has none; later tasks run on its warm worker without provisioning. The plugin never tears the
pool down: `sky jobs pool down team-a100` when it is no longer wanted.
"""

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot

TEAM_CLUSTER = SkyPilot(accelerators="A100:1", cluster_name="team-a100")


@task(task_config=TEAM_CLUSTER, container_image="ghcr.io/acme/train:latest")
def t1(n: int) -> int:
    return n * 2


@task(task_config=TEAM_CLUSTER, container_image="ghcr.io/acme/train:latest")
def t2(n: int) -> int:
    return n + 1


@workflow
def reuse_wf(n: int = 20) -> int:
    return t2(n=t1(n=n))
