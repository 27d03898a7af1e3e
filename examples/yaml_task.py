"""An existing SkyPilot task YAML, `run` and all, as a typed step of a Flyte workflow.

    pyflyte run examples/yaml_task.py eval_wf --model small --samples 70

The YAML is unchanged (examples/eval.sky.yaml): the inputs set its `envs` as `--env MODEL=small` would, and
each file the job writes under $FLYTE_OUTPUT_DIR comes back as the output of that name. The job needs
neither flytekit nor this plugin.
"""

from pathlib import Path
from typing import NamedTuple

from flytekit import FlyteFile, workflow

from flytekitplugins.skypilot import SkyPilotYamlTask

eval_model = SkyPilotYamlTask(
    name="eval_model",
    task=Path(__file__).parent / "eval.sky.yaml",
    inputs={"model": str, "samples": int},
    outputs={"score": float, "report": FlyteFile},
)


class Evaluation(NamedTuple):
    score: float
    report: FlyteFile


@workflow
def eval_wf(model: str = "tiny", samples: int = 100) -> Evaluation:
    score, report = eval_model(model=model, samples=samples)
    return Evaluation(score=score, report=report)
