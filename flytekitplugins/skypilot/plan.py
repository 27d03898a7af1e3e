"""A plan preview: where each SkyPilot task of a workflow would run and at what price, before any launch.

    python -m flytekitplugins.skypilot.plan my_workflows.py my_wf

For every SkyPilot task in the workflow (or the single task named), the API server's optimizer picks the
resources it would launch on (infra, region, instance, accelerators, spot) and their price per hour from
SkyPilot's catalog. Nothing is launched. Python: `plan(my_wf)`.
"""

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.base_task import PythonTask
from flytekit.core.workflow import WorkflowBase
from flytekit.tools.translator import get_serializable

from . import sky_api, translate
from .connector import TASK_TYPE


@dataclass
class Placement:
    task: str
    infra: Optional[str] = None  # as SkyPilot shows it: "Slurm (localcluster)", "AWS (us-east-1)"
    instance_type: Optional[str] = None
    accelerators: Optional[str] = None
    spot: bool = False
    num_nodes: int = 1
    hourly_price: Optional[float] = None  # $/h for the job, as SkyPilot's optimizer prices it; None if unpriced
    error: Optional[str] = None  # why SkyPilot could not place it


def plan(entity: Any) -> List[Placement]:
    """The placement SkyPilot would choose for each SkyPilot task of a workflow (or of one task)."""
    return [_place(task) for task in _skypilot_tasks(entity)]


def _skypilot_tasks(entity: Any) -> Iterator[PythonTask]:
    if isinstance(entity, PythonTask):
        if entity.task_type == TASK_TYPE:
            yield entity
    elif isinstance(entity, WorkflowBase):
        seen = set()
        for node in entity.nodes:
            for task in _skypilot_tasks(node.flyte_entity):
                if task.name not in seen:
                    seen.add(task.name)
                    yield task


def _place(task: PythonTask) -> Placement:
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable({}, settings, task).template
    sky_task = translate.sky_task(translate.task_yaml(template, f"plan-{task.name.rsplit('.', 1)[-1]}"))
    placement = Placement(task=task.name, num_nodes=sky_task.num_nodes)
    try:
        report = sky_api.optimizer_table(sky_task)
    except sky_api.LaunchFailed as e:
        placement.error = str(e)
        return placement
    chosen = chosen_row(report)
    if chosen is None:
        placement.error = f"SkyPilot's optimizer chose nothing:\n{report}"
        return placement
    instance = chosen.get("INSTANCE", "-")
    placement.infra = chosen.get("INFRA")
    placement.spot = "[Spot]" in instance
    placement.instance_type = instance.replace("[Spot]", "").strip() if instance != "-" else None
    placement.accelerators = chosen.get("GPUS") if chosen.get("GPUS", "-") != "-" else None
    cost = float(chosen.get("COST ($)", "0") or 0)
    placement.hourly_price = cost or None  # SkyPilot shows 0.00 where it has no price (Slurm, Kubernetes)
    return placement


def chosen_row(report: str) -> Optional[Dict[str, str]]:
    """The row SkyPilot's optimizer table marks CHOSEN, by column name."""
    lines = [line for line in report.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    header = next((i for i, line in enumerate(lines) if line.strip().startswith("INFRA")), None)
    if header is None:
        return None
    columns = re.split(r"\s{2,}", lines[header].strip())
    for line in lines[header + 1 :]:
        if "✔" in line:
            cells = re.split(r"\s{2,}", line.strip())
            return dict(zip(columns, cells, strict=False))
    return None


def table(placements: List[Placement]) -> str:
    rows = [("TASK", "INFRA", "INSTANCE", "ACCELERATORS", "SPOT", "NODES", "$/HOUR")]
    for p in placements:
        if p.error:
            rows.append((p.task, "cannot be placed (below)", "", "", "", str(p.num_nodes), ""))
            continue
        price = f"{p.hourly_price:.2f}" if p.hourly_price is not None else "unknown"
        rows.append(
            (
                p.task,
                p.infra or "-",
                p.instance_type or "-",
                p.accelerators or "-",
                "yes" if p.spot else "no",
                str(p.num_nodes),
                price,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    lines += [f"\n{p.task}: {p.error}" for p in placements if p.error]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    path, name = Path(argv[0]).resolve(), argv[1]
    sys.path.insert(0, str(path.parent))
    entity = getattr(importlib.import_module(path.stem), name)
    placements = plan(entity)
    print(table(placements))
    return 1 if any(p.error for p in placements) else 0


if __name__ == "__main__":
    sys.exit(main())
