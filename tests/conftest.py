import sys
from pathlib import Path

import pytest

from tests.lab_fixture import REPO_ROOT, RunningLab

sys.path.insert(0, str(REPO_ROOT))


TIERS = ("unit", "lab", "e2e")


def pytest_collection_modifyitems(items):
    """Mark each test with its tier, the folder it lives in (``pytest -m unit`` runs the quick tier alone)."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="module")
def lab_factory():
    """Start labs for a module's scenarios: ``lab_factory("demo")`` for a shipped scenario, or
    ``lab_factory(path)`` for a scenario file of the tests, at one simulated second per real second (or
    ``time_scale``: 0.001 for tests in which simulated time moves only when they advance it); all are stopped
    afterwards."""
    started = {}

    def start(scenario, time_scale=1):
        if scenario not in started:
            path = scenario if isinstance(scenario, Path) else REPO_ROOT / "lab" / "scenarios" / f"{scenario}.yml"
            started[scenario] = RunningLab(path)
            # the collection waits on the lab's clock under the tests (tests/lab_clock.py): real time should hardly
            # move it meanwhile
            started[scenario].pin_time_scale(time_scale)
        return started[scenario]

    yield start
    for running in started.values():
        running.stop()
