"""The latency of every CreateTask and GetTask the propeller harness makes on the bed, and the GetTasks that
failed, printed at the end of the run per test (and per condition, e.g. while the API server is frozen): the
figures the issues ask for, measured by every CI run rather than once by hand."""

import contextlib
import json
import os
import threading
from collections import defaultdict
from typing import Dict, Iterator, List, Tuple

FIGURES_ENV = "FLYTE_SKYPILOT_TEST_FIGURES"  # a directory the run's processes (xdist workers too) append to
_condition = threading.local()


@contextlib.contextmanager
def during(condition: str) -> Iterator[None]:
    """Labels the calls made inside (this thread) with a condition, e.g. "API server frozen"."""
    before = getattr(_condition, "value", "")
    _condition.value = condition
    try:
        yield
    finally:
        _condition.value = before


def record(call: str, seconds: float, failed: bool) -> None:
    """One CreateTask or GetTask: how long it took and whether propeller would count it as failed."""
    where, current = os.environ.get(FIGURES_ENV), os.environ.get("PYTEST_CURRENT_TEST", "")
    if not where or not current.startswith("tests/bed/"):  # the real API server's figures only
        return
    test = current.split(" ")[0].split("::")[-1].split("@")[0]  # without its xdist group
    condition = getattr(_condition, "value", "")
    line = json.dumps({"test": test, "condition": condition, "call": call, "s": seconds, "failed": failed})
    with open(os.path.join(where, f"{os.getpid()}.jsonl"), "a") as f:
        f.write(line + "\n")


def summary(where: str) -> List[str]:
    """One line per (test, condition, call): count, p50, p99, max seconds and failures."""
    groups: Dict[Tuple[str, str, str], List[Tuple[float, bool]]] = defaultdict(list)
    for name in sorted(os.listdir(where)):
        for line in open(os.path.join(where, name)):
            r = json.loads(line)
            groups[(r["test"], r["condition"], r["call"])].append((r["s"], r["failed"]))
    lines = []
    for (test, condition, call), calls in sorted(groups.items()):
        seconds = sorted(s for s, _ in calls)
        failed = sum(f for _, f in calls)
        label = f"{test}{f' [{condition}]' if condition else ''}"
        lines.append(
            f"{call:<10} n={len(seconds):<4} p50={_pct(seconds, 50):6.2f}s p99={_pct(seconds, 99):6.2f}s "
            f"max={seconds[-1]:6.2f}s failed={failed:<3} {label}"
        )
    return lines


def _pct(sorted_values: List[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]
