"""A local run's object-store client (s3fs's aiohttp session on flytekit's local connector loop) is closed when
the process exits: no "Unclosed client session" after the run's value (the object store: rclone's S3 server)."""

import subprocess
import sys

from tests.support.store import object_store, store_env

SCRIPT = """
import sys, tempfile
from flytekit.core.data_persistence import FileAccessProvider
from flytekit.extend.backend import base_connector
from flytekitplugins.skypilot import local_loop

raw = "s3://flyte/raw"
access = FileAccessProvider(local_sandbox_dir=tempfile.mkdtemp(), raw_output_prefix=raw)
path = tempfile.mktemp()
open(path, "w").write("inputs")
if sys.argv[1] == "closed":
    local_loop.close_at_exit(access, raw)
# what flytekit's AsyncConnectorExecutorMixin does in a local run: the inputs up, on its own loop
base_connector.local_connector_loop.run_until_complete(access.async_put_data(path, raw + "/inputs.pb"))
print("value")
"""


def _run(mode, settings):
    command = [sys.executable, "-c", SCRIPT, mode]
    return subprocess.run(command, env=store_env(settings), capture_output=True, text=True, timeout=120)


def test_a_local_runs_store_client_is_closed_at_exit(tmp_path):
    with object_store(tmp_path) as settings:
        left_open = _run("left open", settings)
        closed = _run("closed", settings)
    # without the close, aiohttp reports the session at exit (what `bash dev.sh example` printed)
    assert left_open.returncode == 0 and "Unclosed client session" in left_open.stderr, left_open.stderr
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.strip() == "value" and "Unclosed" not in closed.stderr, closed.stderr
