"""A SkyPilot YAML task's data: Flyte inputs -> the YAML's envs; files under $FLYTE_OUTPUT_DIR -> Flyte outputs."""

import shlex
from typing import Dict, Optional, Tuple

from flytekit import FlyteContextManager
from flytekit.models.core.types import BlobType
from flytekit.models.literals import Blob, BlobMetadata, Literal, LiteralMap, Primitive, Scalar

from . import shared_fs

OUTPUT_DIR_ENV = "FLYTE_OUTPUT_DIR"
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class MissingOutput(Exception):
    """The job succeeded but did not write an output the task declares (or wrote one that does not parse)."""


def env_values(inputs: LiteralMap, env_of_input: Dict[str, str]) -> Dict[str, str]:
    """The YAML envs the task's inputs set, as `--env NAME=value` would."""
    literals = inputs.literals if inputs is not None else {}
    return {env: _as_text(literals[name]) for name, env in env_of_input.items() if name in literals}


def _as_text(literal: Literal) -> str:
    scalar = literal.scalar
    if scalar is not None and scalar.blob is not None:
        return scalar.blob.uri  # a FlyteFile / FlyteDirectory: where it is
    if scalar is not None and scalar.primitive is not None:
        value = scalar.primitive.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if hasattr(value, "total_seconds"):
            return str(value.total_seconds())
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return str(value)
    raise TypeError(f"a {type(literal).__name__} input cannot become an environment variable")


def output_dir(output_prefix: str) -> str:
    return f"{output_prefix.rstrip('/')}/outputs"


def job_output_dir(output_prefix: str, job_name: str) -> Tuple[str, Optional[str]]:
    """Where the job writes its outputs, and the `run` step that then uploads them (None: nothing to upload).

    A shared local prefix is the same path in the job. With an object store the job writes to a local
    directory, and a step of ours uploads it after the YAML's own `run` succeeded (rank 0 only), with the
    storage credentials the connector gives every job.
    """
    prefix = output_dir(output_prefix)
    path = shared_fs.local_path(prefix)
    if path is not None:
        shared_fs.open_to_job(output_prefix)
        path.mkdir(exist_ok=True)
        path.chmod(0o777)
        return str(path), None
    local = f"/tmp/flyte-outputs-{job_name}"  # no shared parent: jobs of different users share /tmp
    importable = "python3 -c 'import flytekitplugins.skypilot.job_outputs' 2>/dev/null"
    check = f"{importable} || {{ echo {shlex.quote(_NO_UPLOADER)} >&2; exit 3; }}"
    upload = f"python3 -m flytekitplugins.skypilot.job_outputs {shlex.quote(local)} {shlex.quote(prefix)} || exit $?"
    step = f'if [ "${{SKYPILOT_NODE_RANK:-0}}" = 0 ]; then\n  {check}\n  {upload}\nfi'
    return local, step


_NO_UPLOADER = (
    "The outputs under $FLYTE_OUTPUT_DIR go to the object store, and python3 in this job cannot import "
    "flytekitplugins.skypilot: add `pip install flytekitplugins-skypilot` (flytekit and pydantic only) to the "
    "job's setup or image"
)


def with_upload(run: str, local_dir: str, step: str) -> str:
    """The YAML's own `run` (in a subshell, so that its `exit` keeps its meaning), then the upload step."""
    return f"mkdir -p {shlex.quote(local_dir)} || exit $?\n(\n{run}\n) || exit $?\n{step}\n"


def read_outputs(output_prefix: str, kinds: Dict[str, str]) -> LiteralMap:
    """The outputs the job wrote under $FLYTE_OUTPUT_DIR, typed as the task declares them."""
    ctx = FlyteContextManager.current_context()
    literals = {}
    for name, kind in kinds.items():
        uri = f"{output_dir(output_prefix)}/{name}"
        if not ctx.file_access.exists(uri):
            raise MissingOutput(f"the job wrote no ${OUTPUT_DIR_ENV}/{name}: write output {name!r} there")
        if kind in ("file", "directory"):
            literals[name] = _blob(uri, kind)
        else:
            local = ctx.file_access.get_random_local_path()
            ctx.file_access.get_data(uri, local)
            with open(local) as f:
                literals[name] = _primitive(name, kind, f.read().strip())
    return LiteralMap(literals)


def _blob(uri: str, kind: str) -> Literal:
    dimensionality = BlobType.BlobDimensionality.SINGLE if kind == "file" else BlobType.BlobDimensionality.MULTIPART
    return Literal(scalar=Scalar(blob=Blob(metadata=BlobMetadata(type=BlobType("", dimensionality)), uri=uri)))


def _primitive(name: str, kind: str, text: str) -> Literal:
    try:
        if kind == "integer":
            primitive = Primitive(integer=int(text))
        elif kind == "float":
            primitive = Primitive(float_value=float(text))
        elif kind == "boolean":
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError("not true/false")
            primitive = Primitive(boolean=text.lower() in _TRUE)
        else:
            primitive = Primitive(string_value=text)
    except ValueError:
        raise MissingOutput(f"${OUTPUT_DIR_ENV}/{name} holds {text[:80]!r}, which is not a {kind}") from None
    return Literal(scalar=Scalar(primitive=primitive))
