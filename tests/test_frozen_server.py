"""A real SkyPilot SDK against a loopback listener that accepts connections and never answers (a frozen API
server): a fresh connector process's CreateTask and GetTask each return within 5 s with a clear outcome."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A fresh connector process (SkyPilot's SDK imported on first use, its endpoint read once): create, then get.
SCRIPT = """
import json, os, time
from flytekitplugins.skypilot import SkyPilotConnector, sky_api
from flytekitplugins.skypilot.runtime import Runtime
from tests.support import prepare, run
from tests.test_flyte_contract import square

conn, out = SkyPilotConnector(runtime=Runtime()), {"gets": []}
started = time.monotonic()
try:
    template, prefix, metadata = prepare(square, {"i": 1})
    meta = run(conn.create(template, prefix, None, metadata))
    out["request_id"] = meta.request_id
except Exception as e:
    meta, out["create_error"] = None, f"{type(e).__name__}: {e}"
out["create_s"] = time.monotonic() - started
for _ in range(3 if meta else 0):
    started = time.monotonic()
    resource = run(conn.get(meta))
    out["gets"].append([time.monotonic() - started, resource.phase, resource.message])
if meta:  # another fresh process, asked about a launch it never saw: its first round cannot finish
    other, started = SkyPilotConnector(runtime=Runtime()), time.monotonic()
    resource = run(other.get(type(meta)(meta.job_name, "a-request-id", meta.output_prefix, meta.endpoint)))
    out["fresh_get"] = [time.monotonic() - started, resource.phase, resource.message]
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)  # the SDK's calls to the frozen server never return: do not wait for them
"""


class FrozenServer:
    """Accepts every connection and reads what it is sent; never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = []  # request lines received
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn) -> None:
        try:
            while data := conn.recv(65536):
                self.requests += [line for line in data.decode(errors="replace").splitlines() if " HTTP/1" in line]
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_a_frozen_api_server_gets_a_create_and_gets_inside_their_deadlines(tmp_path):
    server = FrozenServer()
    env = {
        **os.environ,
        "SKYPILOT_API_SERVER_ENDPOINT": f"http://127.0.0.1:{server.port}",
        "FLYTE_SKYPILOT_SHARED_DIR": str(tmp_path),
        "HOME": str(tmp_path),  # no ~/.sky of the user's
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
        )
    finally:
        server.close()
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout + done.stderr
    out = json.loads(lines[0][len("RESULT ") :])
    print(
        f"frozen loopback server: CreateTask {out['create_s']:.2f} s, GetTask {[round(g[0], 2) for g in out['gets']]}, "
        f"a fresh process's GetTask {out.get('fresh_get', [0])[0]:.2f} s"
    )
    assert out["create_s"] < 5
    if "create_error" in out:  # a create that reports failure launched nothing
        assert not [r for r in server.requests if "/jobs/launch" in r], server.requests
        assert f"127.0.0.1:{server.port}" in out["create_error"]
        return
    assert out["request_id"] == ""  # handed to the background: SkyPilot never answered
    for took, phase, message in out["gets"]:
        assert took < 5 and phase == 6 and "SkyPilot has not taken it yet" in message  # INITIALIZING
    took, phase, message = out["fresh_get"]
    assert took < 5 and phase == 1 and "no answer from SkyPilot" in message  # QUEUED, saying why
