"""Test-wide safety: no SDK call may start a SkyPilot API server, and nothing calls home."""

import os
import tempfile

os.environ["SKYPILOT_DISABLE_LOCAL_API_SERVER"] = "1"
for _name, _value in {
    "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
    "SKYPILOT_USAGE_LOG_URL": "http://127.0.0.1:9",
    "SKYPILOT_SCARF_GATEWAY_URL": "http://127.0.0.1:9",
}.items():
    os.environ.setdefault(_name, _value)


def pytest_configure(config):
    """The bed tests' CreateTask / GetTask figures go to one directory per run (workers inherit it)."""
    from tests.support import figures

    if not hasattr(config, "workerinput") and figures.FIGURES_ENV not in os.environ:
        os.environ[figures.FIGURES_ENV] = tempfile.mkdtemp(prefix="bed-figures-")


def pytest_terminal_summary(terminalreporter):
    from tests.support import figures

    where = os.environ.get(figures.FIGURES_ENV)
    lines = figures.summary(where) if where and os.path.isdir(where) else []
    if lines:
        terminalreporter.section(
            "CreateTask / GetTask on the bed (propeller's deadline 10 s; 6 failed GetTasks fail a task)"
        )
        for line in lines:
            terminalreporter.write_line(line)
