"""The plan preview against the bed's real API server: SkyPilot's optimizer choice, nothing launched."""

import subprocess
import sys
from pathlib import Path

from flytekitplugins.skypilot.plan import plan

ROOT = Path(__file__).resolve().parents[2]


def test_plan_shows_the_slurm_placement_of_each_task_and_launches_nothing():
    import tasks

    placements = {p.task: p for p in plan(tasks.cluster_wf)} | {p.task: p for p in plan(tasks.ranks_wf)}
    assert set(placements) == {"tasks.on_cluster", "tasks.gather_ranks"}
    for p in placements.values():
        assert p.error is None and p.infra == "Slurm (localcluster)" and p.hourly_price is None, p
    assert placements["tasks.gather_ranks"].num_nodes == 2


def test_plan_command_says_why_a_task_cannot_be_placed():
    result = subprocess.run(
        [sys.executable, "-m", "flytekitplugins.skypilot.plan", "tests/bed/tasks.py", "h100_wf"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tasks.needs_h100  cannot be placed (below)" in result.stdout
    assert "H100" in result.stdout.split("(below)", 1)[1] and "\x1b[" not in result.stdout
