"""Writes, reads back and removes one object under a prefix, with only the storage access a job gets: what the
preflight runs to show that jobs can reach Flyte's object store.

    python -m flytekitplugins.skypilot.storage_probe <prefix>

Needs only flytekit (the plugin's light install), never SkyPilot.
"""

import os
import sys
import tempfile
import uuid

from flytekit.core.data_persistence import FileAccessProvider


def probe(prefix: str) -> str:
    store = FileAccessProvider(tempfile.mkdtemp(), prefix)
    remote = f"{prefix.rstrip('/')}/skypilot-preflight/{uuid.uuid4().hex}"
    body = uuid.uuid4().hex.encode()
    fs = store.get_filesystem_for_path(remote)
    fs.pipe_file(remote, body)
    try:
        if fs.cat_file(remote) != body:
            raise RuntimeError(f"{remote} reads back otherwise than written")
    finally:
        fs.rm_file(remote)
    return remote


if __name__ == "__main__":
    try:
        print(f"wrote, read and removed {probe(sys.argv[1])}")
        code = 0
    except Exception as e:  # one line: the storage error as a job would meet it
        cause = e.__cause__ or e
        print(f"{type(cause).__name__}: {cause}", file=sys.stderr)
        code = 1
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)
