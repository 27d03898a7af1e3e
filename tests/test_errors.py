"""Misconfiguration fails before anything is launched, with one message that names the problem and the fix."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello.py"
PYFLYTE = str(Path(sys.executable).parent / "pyflyte")


def run_example(**env) -> str:
    full_env = {**os.environ, "COLUMNS": "400", **env}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    result = subprocess.run(
        [PYFLYTE, "run", EXAMPLE.name, "hello_wf"],
        cwd=EXAMPLE.parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_unreachable_api_server_is_one_clear_error_naming_the_endpoint(tmp_path):
    out = run_example(SKYPILOT_API_SERVER_ENDPOINT="http://127.0.0.1:1", FLYTE_SKYPILOT_SHARED_DIR=str(tmp_path))
    assert "SkyPilot API server http://127.0.0.1:1 is unreachable" in out
    assert "SKYPILOT_API_SERVER_ENDPOINT" in out
    assert out.count("│ ❱") == 1, out  # the user's own frame only, not a wall of SDK frames


def test_local_data_the_job_cannot_reach_is_refused_with_the_fix():
    out = run_example(SKYPILOT_API_SERVER_ENDPOINT="http://127.0.0.1:1", FLYTE_SKYPILOT_SHARED_DIR=None)
    assert "cannot read or write" in out and "--raw-output-data-prefix s3://" in out
    assert "FLYTE_SKYPILOT_SHARED_DIR" in out
    assert "unreachable" not in out  # refused before any SkyPilot call
