"""A SkyPilot YAML task's data: Flyte inputs -> the YAML's envs; files under $FLYTE_OUTPUT_DIR -> Flyte outputs."""

from typing import Any, Dict, Tuple

from flytekit import FlyteContextManager
from flytekit.models.core.types import BlobType
from flytekit.models.literals import Blob, BlobMetadata, Literal, LiteralMap, Primitive, Scalar

from . import shared_fs

OUTPUT_DIR_ENV = "FLYTE_OUTPUT_DIR"
_MOUNT_POINT = "/flyte-outputs"
_MOUNTABLE = ("s3://", "gs://", "r2://", "cos://", "oci://", "nebius://")
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


def job_output_dir(output_prefix: str) -> Tuple[str, Dict[str, Any]]:
    """Where the job writes its outputs, and the file mount that makes it so.

    A shared local prefix is the same path in the job; a bucket prefix is reached by mounting the bucket
    (SkyPilot mounts whole buckets) and writing under the prefix's path inside it.
    """
    prefix = output_dir(output_prefix)
    path = shared_fs.local_path(prefix)
    if path is not None:
        shared_fs.open_to_job(output_prefix)
        path.mkdir(exist_ok=True)
        path.chmod(0o777)
        return str(path), {}
    for scheme in _MOUNTABLE:
        if prefix.startswith(scheme):
            bucket, _, key = prefix[len(scheme) :].partition("/")
            mount = {_MOUNT_POINT: {"source": f"{scheme}{bucket}", "mode": "MOUNT"}}
            return f"{_MOUNT_POINT}/{key}", mount
    raise ValueError(
        f"The task's outputs go to {output_prefix}, which a SkyPilot job cannot mount: use a raw output prefix "
        f"on {', '.join(s.rstrip(':/') for s in _MOUNTABLE)} storage"
    )


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
