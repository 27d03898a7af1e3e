"""An S3-compatible object store on loopback for stand-in tests: rclone's S3 server (the bed's, see testbed's
README), its credentials checked on every request."""

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

RCLONE = str(Path(sys.executable).parent / "rclone")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def object_store(data: Path, bucket: str = "flyte") -> Iterator[Dict[str, str]]:
    """Yields flytekit's settings for a fresh store with one bucket (FLYTE_AWS_ENDPOINT, _ACCESS_KEY_ID, ...)."""
    (data / bucket).mkdir(parents=True)
    key, secret, port = f"test{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, _free_port()
    cmd = [RCLONE, "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}"]
    server = subprocess.Popen([*cmd, "--auth-key", f"{key},{secret}", str(data)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield {
            "FLYTE_AWS_ENDPOINT": f"http://127.0.0.1:{port}",
            "FLYTE_AWS_ACCESS_KEY_ID": key,
            "FLYTE_AWS_SECRET_ACCESS_KEY": secret,
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def store_env(settings: Dict[str, str]) -> Dict[str, str]:
    return {**os.environ, **settings}
