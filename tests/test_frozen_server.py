"""A real SkyPilot SDK against a loopback listener that takes connections and never answers (a frozen API
server; one that reads what it is sent, and one that never even accepts): a fresh connector process's CreateTask
and GetTask each return within 5 s and DeleteTask within 8 s, each with a clear outcome, and a create that
reports failure launched nothing."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CREATE_S, GET_S, DELETE_S = 5.0, 5.0, 8.0
# A fresh connector process (SkyPilot's SDK imported on first use, its endpoint read once): create, get, delete.
SCRIPT = """
import json, os, time
from flytekitplugins.skypilot import SkyPilotConnector, sky_api
from flytekitplugins.skypilot.runtime import Runtime
from flytekit import map_task
from tests.support import prepare, run
from tests.support.propeller import prepare_map_subtask
from tests.test_flyte_contract import square

def timed_delete(conn, meta):
    started, error = time.monotonic(), None
    try:
        run(conn.delete(meta))
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    return [time.monotonic() - started, error]

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
if meta:  # once the SDK's own health check gives up (3 x 2.5 s), get says so
    time.sleep(max(0.0, 9.0 - (time.monotonic() - started)))
    started = time.monotonic()
    resource = run(conn.get(meta))
    out["late_get"] = [time.monotonic() - started, resource.phase, resource.message]
if meta:  # another fresh process, asked about a launch it never saw: its first round cannot finish
    other, started = SkyPilotConnector(runtime=Runtime()), time.monotonic()
    seen = type(meta)(meta.job_name, "a-request-id", meta.output_prefix, meta.endpoint)
    resource = run(other.get(seen))
    out["fresh_get"] = [time.monotonic() - started, resource.phase, resource.message]
    # propeller's delete, repeated while it fails; and the other process's
    out["deletes"] = [timed_delete(conn, meta), timed_delete(conn, meta), timed_delete(other, seen)]
for kind in ("map_subtask", "local"):  # a fan-out subtask (its batch's path) and a local run (a user watching)
    started, sub = time.monotonic(), None
    try:
        if kind == "map_subtask":
            template, prefix, inputs, metadata = prepare_map_subtask(map_task(square), {"i": [1, 2]}, 0, "efrozen")
            sub = run(conn.create(template, prefix, inputs, metadata))
        else:
            template, prefix, _ = prepare(square, {"i": 2})
            sub = run(conn.create(template, prefix, None, None))
        out[kind] = {"create": [time.monotonic() - started, None]}
    except Exception as e:
        out[kind] = {"create": [time.monotonic() - started, f"{type(e).__name__}: {e}"]}
    if sub is not None:
        started = time.monotonic()
        resource = run(conn.get(sub))
        out[kind]["get"] = [time.monotonic() - started, resource.phase, resource.message]
        out[kind]["delete"] = timed_delete(conn, sub)
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)  # the SDK's calls to the frozen server never return: do not wait for them
"""


class FrozenServer:
    """Takes every connection and never answers: accepting each and reading what it is sent, or (`accepting`
    False) leaving them in the listen backlog, read only when closed."""

    def __init__(self, accepting: bool = True) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self.requests = []  # request lines received
        self.conns = []
        if accepting:
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
        """Reads what waits in the backlog (what was sent to a server that never accepted), then closes."""
        self.sock.settimeout(0.2)
        try:
            while True:
                conn, _ = self.sock.accept()
                conn.settimeout(0.2)
                self.conns.append(conn)
                self._read(conn)  # until its timeout: what the client sent is in the socket's buffer
        except OSError:
            pass
        self.sock.close()
        for conn in self.conns:
            conn.close()


def connector_run(server: FrozenServer, tmp_path) -> dict:
    env = {
        **os.environ,
        "SKYPILOT_API_SERVER_ENDPOINT": f"http://127.0.0.1:{server.port}",
        "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1",
        "FLYTE_SKYPILOT_SHARED_DIR": str(tmp_path),
        "HOME": str(tmp_path),  # no ~/.sky of the user's
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.close()
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[0][len("RESULT ") :])


@pytest.mark.parametrize("accepting", [True, False], ids=["reads-never-answers", "never-accepts"])
def test_a_frozen_api_server_gets_a_create_gets_and_deletes_inside_their_deadlines(tmp_path, accepting):
    server = FrozenServer(accepting)
    out = connector_run(server, tmp_path)
    print(
        f"frozen loopback server ({'reads, never answers' if accepting else 'never accepts'}): "
        f"CreateTask {out['create_s']:.2f} s, GetTask {[round(g[0], 2) for g in out['gets']]}, "
        f"a fresh process's GetTask {out.get('fresh_get', [0])[0]:.2f} s, "
        f"a late GetTask {out.get('late_get', [0])[0]:.2f} s, "
        f"DeleteTask {[round(d[0], 2) for d in out.get('deletes', [])]} s; a map subtask's CreateTask "
        f"{out['map_subtask']['create'][0]:.2f} s and DeleteTask {out['map_subtask'].get('delete', [0])[0]:.2f} s; "
        f"a local run's CreateTask {out['local']['create'][0]:.2f} s"
    )
    print(f"requests the listener was sent: {sorted(set(server.requests))}")
    assert any("/api/health" in r for r in server.requests)  # SkyPilot's own client asked the listener
    assert out["create_s"] < CREATE_S
    if "create_error" in out:  # a create that reports failure launched nothing
        assert not [r for r in server.requests if "/jobs/launch" in r], server.requests
        assert f"127.0.0.1:{server.port}" in out["create_error"] and "not answer" in out["create_error"]
        return
    assert out["request_id"] == ""  # handed to the background: SkyPilot never answered
    for took, phase, message in out["gets"]:
        assert took < GET_S and phase == 6 and "SkyPilot has not taken it yet" in message  # INITIALIZING
    took, phase, message = out["fresh_get"]
    assert took < GET_S and phase == 1 and "no answer from SkyPilot" in message  # QUEUED, saying why
    took, phase, message = out["late_get"]
    assert took < GET_S and phase == 6 and "does not answer" in message and "keeps trying" in message, message
    deletes = [*out["deletes"], out["map_subtask"]["delete"], out["local"]["delete"]]
    for took, error in deletes:  # propeller retries a delete that fails; the cancel goes on meanwhile
        assert took < DELETE_S and "SkyPilotUnavailable" in error and "in the background" in error, error
        assert "a repeated delete tries again" in error
    for kind in ("map_subtask", "local"):  # both handed to the background, reported as such
        (took, error), (get_took, phase, message) = out[kind]["create"], out[kind]["get"]
        assert took < CREATE_S and error is None and get_took < GET_S and phase == 6, out[kind]
    assert "launching with the other subtasks" in out["map_subtask"]["get"][2]
