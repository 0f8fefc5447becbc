import sys
from pathlib import Path

import pytest

from tests.lab_fixture import REPO_ROOT, RunningLab

sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="module")
def lab_factory():
    """Start labs for a module's scenarios: ``lab_factory("demo")`` for a shipped scenario, or
    ``lab_factory(path)`` for a scenario file of the tests; all are stopped afterwards."""
    started = {}

    def start(scenario):
        if scenario not in started:
            path = scenario if isinstance(scenario, Path) else REPO_ROOT / "lab" / "scenarios" / f"{scenario}.yml"
            started[scenario] = RunningLab(path)
        return started[scenario]

    yield start
    for running in started.values():
        running.stop()
