"""The end of a failed job's log, for the task's failure message, with the task's secret values masked.

SkyPilot takes seconds to hand a log over (4 s on the bed), so it is fetched in the background: a get waits
for it a few seconds and otherwise reports the task still running, "collecting the end of its log", until a
later get finds it (or finds that SkyPilot had none to give).
"""

import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Dict, Iterable, List, Optional

from flytekit import logger

from . import credentials, sky_api

LINES = 20
_FETCHED = 1000  # enough to reach past flytekit's error report and the interpreter's shutdown noise
MASK = credentials.MASK
_PREFIX = re.compile(r"^\([^)]*pid=\d+\)\s?")  # SkyPilot's "(<job>, pid=N) " before each line of the job
# pyflyte-execute logs the user's error between these (first and last line of its report)
_REPORT_START, _REPORT_END = "Exception when executing task", "!! End Error Captured by Flyte !!"
# At interpreter exit, the object store's client sessions (s3fs / aiohttp) are reported unclosed, and flytekit's
# asyncio handler fails to log that (its rich handler cannot import any more): pages of tracebacks that are no
# news about the task: each failed report (to "Python is likely shutting down") and each plain one is dropped.
_NOISE_START, _NOISE_END = "Unhandled error in exception handler", "Python is likely shutting down"
_NOISE_LINE = re.compile(r"^(ERROR:asyncio:)?Unclosed (client session|connector)$|^(client_session|connector): <")


class Tails:
    """Failed jobs' log tails, each fetched once, in the background."""

    def __init__(self, sky: sky_api.Client) -> None:
        self._sky = sky
        self._fetches: Dict[int, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="skypilot-log-tail")

    def get(self, job_id: int, secret_names: Iterable[str], wait: float = 5.0) -> Optional[str]:
        """The tail ("" if SkyPilot has none), or None while it is still being fetched."""
        with self._lock:
            if job_id not in self._fetches:
                self._fetches[job_id] = self._pool.submit(failure_tail, self._sky, job_id, list(secret_names))
            fetch = self._fetches[job_id]
        try:
            return fetch.result(timeout=wait)
        except FutureTimeout:
            return None

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._fetches.pop(job_id, None)

    def held(self) -> Dict[str, int]:
        with self._lock:
            return {"tails.fetches": len(self._fetches)}


def failure_tail(sky: sky_api.Client, job_id: int, secret_names: Iterable[str]) -> str:
    """ "last lines of the job's log: ..." or "" when SkyPilot has no log to give."""
    try:
        text = sky.log_tail(job_id, _FETCHED)
    except Exception as e:  # the failure itself is the news; a log SkyPilot cannot give is not
        logger.warning(f"no log tail for managed job {job_id}: {e}")
        return ""
    lines = [_PREFIX.sub("", line).rstrip() for line in text.splitlines()]
    lines = [line for line in _without_shutdown_noise(_without_error_report(lines)) if line.strip()][-LINES:]
    if not lines:
        return ""
    return "last lines of the job's log:\n" + masked("\n".join(lines), secret_names)


def _without_shutdown_noise(lines: List[str]) -> List[str]:
    kept, inside = [], False
    for line in lines:
        inside = inside or _NOISE_START in line
        if not inside and not _NOISE_LINE.match(line.strip()):
            kept.append(line)
        elif _NOISE_END in line:
            inside = False
    return kept


def _without_error_report(lines: List[str]) -> List[str]:
    """The log without pyflyte-execute's report of the user's error (the message has it from error.pb)."""
    kept, inside = [], False
    for line in lines:
        inside = inside or _REPORT_START in line
        if not inside:
            kept.append(line)
        elif _REPORT_END in line:
            inside = False
    return kept


def masked(text: str, secret_names: Iterable[str]) -> str:
    """`text` with the values of the task's secrets replaced (a job may print what it was given); the connector
    masks every message it returns once more, the storage secrets included."""
    return credentials.masked(text, secret_names)
