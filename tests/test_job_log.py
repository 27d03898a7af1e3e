"""The end of a failed job's log: fetched in the background, SkyPilot's line prefixes gone, secrets masked."""

import threading

from flytekitplugins.skypilot import job_log, sky_api

LOG = """(flyte-e1-n0-0-abc, pid=42) step 1
(flyte-e1-n0-0-abc, pid=42) token is hf_secret_value_9      \n
(flyte-e1-n0-0-abc, pid=42) 08:37:57 ERROR    entrypoint.py:301 - Exception when executing task
(flyte-e1-n0-0-abc, pid=42)                          tasks.boom, reason USER:ValueError
(flyte-e1-n0-0-abc, pid=42)     Traceback (most recent call last):
(flyte-e1-n0-0-abc, pid=42) 08:37:57 ERROR    entrypoint.py:306 - !! End Error Captured by Flyte !!
srun: error: vm: task 0: Exited with exit code 1
ERROR: Job 1 failed with return code list: [1]"""


def test_the_tail_drops_skypilots_prefixes_and_masks_the_tasks_secret_values(monkeypatch):
    monkeypatch.setenv("_FSEC_SKYPILOT_TASK_HF_TOKEN", "hf_secret_value_9")
    monkeypatch.setattr(sky_api, "log_tail", lambda job_id, lines: LOG)
    tail = job_log.failure_tail(sky_api.Client(), 7, ["HF_TOKEN", "NOT_GIVEN"])
    # flytekit's report of the user's error is left out: the message has that error from error.pb
    assert tail == (
        "last lines of the job's log:\nstep 1\ntoken is ********\n"
        "srun: error: vm: task 0: Exited with exit code 1\nERROR: Job 1 failed with return code list: [1]"
    )


def test_a_slow_log_is_waited_for_on_a_later_get_and_fetched_once(monkeypatch):
    released, calls = threading.Event(), []

    def slow(job_id, lines):
        calls.append(job_id)
        released.wait(5)
        return "the end"

    monkeypatch.setattr(sky_api, "log_tail", slow)
    tails = job_log.Tails(sky_api.Client())
    assert tails.get(7, [], wait=0.1) is None  # still coming: the connector reports RUNNING meanwhile
    released.set()
    assert tails.get(7, [], wait=5) == "last lines of the job's log:\nthe end"
    assert tails.get(7, []) == "last lines of the job's log:\nthe end" and calls == [7]


def test_no_log_from_skypilot_means_no_tail(monkeypatch):
    def unavailable(job_id, lines):
        raise sky_api.SkyPilotUnavailable("unreachable")

    monkeypatch.setattr(sky_api, "log_tail", unavailable)
    assert job_log.Tails(sky_api.Client()).get(7, []) == ""


SHUTDOWN_NOISE = """(head, rank=1, pid=7) ERROR:asyncio:Unhandled error in exception handler
(head, rank=1, pid=7) context: {'client_session': <aiohttp.ClientSession>, 'message': 'Unclosed client session'}
(head, rank=1, pid=7) Traceback (most recent call last):
(head, rank=1, pid=7)   File "/usr/lib/python3.11/logging/__init__.py", line 978, in handle
(head, rank=1, pid=7)     from .containers import Renderables
(head, rank=1, pid=7) ImportError: sys.meta_path is None, Python is likely shutting down
(head, rank=1, pid=7) Unclosed client session
(head, rank=1, pid=7) client_session: <aiohttp.client.ClientSession object at 0x7f35>
"""


def test_the_interpreters_shutdown_noise_about_unclosed_store_sessions_is_left_out(monkeypatch):
    """In a job whose data is in an object store, pyflyte-execute ends with pages of tracebacks about unclosed
    client sessions: the user's own last lines must still be in the tail."""
    log = "(head, rank=1, pid=7) checked the input: about to give up\n" + SHUTDOWN_NOISE * 30 + "srun: error: vm2"
    monkeypatch.setattr(sky_api, "log_tail", lambda job_id, lines: log)
    tail = job_log.failure_tail(sky_api.Client(), 7, [])
    assert tail == "last lines of the job's log:\nchecked the input: about to give up\nsrun: error: vm2", tail
