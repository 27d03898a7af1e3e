"""Buckets mounted into the job, beside Flyte's own FlyteFile / FlyteDirectory data.

    pyflyte run --remote examples/storage.py storage_wf --split train

SkyPilot mounts whole buckets: mount the bucket and address the sub-path inside it (a MOUNT of
s3://bucket/sub/path is refused at declaration, with this fix).
"""

from pathlib import Path

from flytekit import task, workflow
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from flytekitplugins.skypilot import SkyPilot

MOUNTS = SkyPilot(
    cpus="8+",
    file_mounts={
        "/datasets": {"source": "s3://acme-datasets", "mode": "MOUNT"},  # streamed, read-only use
        "/checkpoints": {"source": "gs://acme-checkpoints", "mode": "MOUNT_CACHED"},  # written back async
        "/vocab": {"source": "r2://acme-vocab", "mode": "COPY"},  # copied at start
        "/azure": {"source": "https://acmeaccount.blob.core.windows.net/shared", "mode": "MOUNT"},
        "/tokenizer.json": "https://huggingface.co/gpt2/resolve/main/tokenizer.json",  # a single file
    },
)


@task(task_config=MOUNTS, container_image="ghcr.io/acme/train:latest")
def count_rows(split: str, extra: FlyteFile) -> FlyteDirectory:
    out = Path("/tmp/stats")
    out.mkdir(exist_ok=True)
    rows = sum(1 for _ in open(f"/datasets/wiki/{split}.jsonl"))  # the sub-path inside the mounted bucket
    (out / "rows.txt").write_text(f"{split}: {rows} rows, extra file {Path(extra.download()).stat().st_size} bytes")
    return FlyteDirectory(str(out))  # uploaded by Flyte to the run's raw output prefix


@workflow
def storage_wf(split: str = "train", extra: FlyteFile = "https://example.com/extra.txt") -> FlyteDirectory:
    return count_rows(split=split, extra=extra)
