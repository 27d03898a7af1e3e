"""The unchanged example YAML as a bed task: its job's python3 is this venv's, which has the plugin's light install
(it uploads the outputs to the object store); a job image would carry `pip install flytekitplugins-skypilot`."""

import sys
from pathlib import Path
from typing import NamedTuple

from flytekit import FlyteFile, workflow

from flytekitplugins.skypilot import SkyPilotYamlTask

eval_model = SkyPilotYamlTask(
    name="eval_model",
    task=Path(__file__).resolve().parents[2] / "examples" / "eval.sky.yaml",
    inputs={"model": str, "samples": int},
    outputs={"score": float, "report": FlyteFile},
    environment={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
)


class Evaluation(NamedTuple):
    score: float
    report: FlyteFile


@workflow
def eval_wf(model: str, samples: int) -> Evaluation:
    score, report = eval_model(model=model, samples=samples)
    return Evaluation(score=score, report=report)
