"""Run inside a YAML task's job after its own `run` succeeded: uploads the files it wrote under $FLYTE_OUTPUT_DIR
to the task's output prefix in the object store, with the storage credentials the connector gave the job.

    python -m flytekitplugins.skypilot.job_outputs <local output dir> <remote output dir>

Needs only flytekit (the plugin's light install), never SkyPilot.
"""

import os
import sys
import tempfile

from flytekit.core.data_persistence import FileAccessProvider


def upload(local_dir: str, remote_dir: str) -> int:
    names = sorted(os.listdir(local_dir)) if os.path.isdir(local_dir) else []
    if not names:
        print(f"flyte outputs: the job wrote nothing under {local_dir}", file=sys.stderr)
        return 0  # the connector names each missing output
    store = FileAccessProvider(tempfile.mkdtemp(), remote_dir)
    for name in names:
        path, remote = os.path.join(local_dir, name), f"{remote_dir.rstrip('/')}/{name}"
        try:
            store.put_data(path, remote, is_multipart=os.path.isdir(path))
        except Exception as e:  # the storage error, in one line of the job's log (the task's message shows it)
            cause = e.__cause__ or e
            print(f"flyte outputs: cannot upload {name} to {remote}: {type(cause).__name__}: {cause}", file=sys.stderr)
            return 1
    print(f"flyte outputs: {', '.join(names)} uploaded to {remote_dir}")
    return 0


if __name__ == "__main__":
    code = upload(sys.argv[1], sys.argv[2])
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)  # skips fsspec's client teardown at interpreter exit (noise in the job's log)
