import sys

import pytest

from tests.lab_fixture import REPO_ROOT, RunningLab

sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="module")
def lab_factory():
    """Start labs for a module's scenarios: ``lab_factory("demo")``; all are stopped afterwards."""
    started = {}

    def start(scenario):
        if scenario not in started:
            started[scenario] = RunningLab(REPO_ROOT / "lab" / "scenarios" / f"{scenario}.yml")
        return started[scenario]

    yield start
    for running in started.values():
        running.stop()
