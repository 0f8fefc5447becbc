"""Run the collection's modules the way users do: ansible-playbook, against the lab.

``run_playbook(lab, playbook, ...)`` runs a playbook from ``tests/e2e/playbooks/`` (or any path)
on localhost with the collection installed from this repository, and returns what the user would
see plus the per-task results parsed from the ``ansible.posix.json`` callback. Other test modules
import it (``from tests.e2e.conftest import run_playbook``) or take the ``collection_env`` fixture
for their own ansible commands.
"""

import atexit
import functools
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.lab_fixture import REPO_ROOT

ANSIBLE_BIN = Path(sys.executable).parent
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PLAYBOOK_TIMEOUT = 900
LAB_CLOCK = "tests.lab_clock:LabClock"


@functools.lru_cache(maxsize=None)
def _collection_root():
    """A temporary collections root where this repository is drs_orchestration.agent_deployer."""
    root = Path(tempfile.mkdtemp(prefix="collections-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    namespace = root / "ansible_collections" / "drs_orchestration"
    namespace.mkdir(parents=True)
    (namespace / "agent_deployer").symlink_to(REPO_ROOT, target_is_directory=True)
    # localhost runs modules with this interpreter (it has boto3), not with whatever python3 is on PATH.
    (root / "inventory.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    return root


def collection_environment(lab_clock=True):
    """Environment additions that make ansible-* commands find this collection and amazon.aws, and (unless
    ``lab_clock`` is false) wait on the lab's clock (tests/lab_clock.py) rather than in real time."""
    site_packages = sysconfig.get_paths()["purelib"]
    environment = {
        "ANSIBLE_COLLECTIONS_PATH": f"{_collection_root()}:{site_packages}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(_collection_root() / "ansible-tmp"),
    }
    if lab_clock:
        environment.update(DRS_AGENT_DEPLOYER_CLOCK=LAB_CLOCK, PYTHONPATH=str(REPO_ROOT))
    return environment


@pytest.fixture(scope="session")
def collection_env():
    return collection_environment()


class PlaybookRun(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    report: dict

    def task(self, name, host="localhost"):
        """The result of the task called ``name`` on ``host`` (the last one, if it ran in a loop)."""
        found = [
            task["hosts"][host]
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            if task["task"]["name"] == name and host in task["hosts"]
        ]
        if not found:
            raise AssertionError(f"no result for task {name!r} on {host}:\n{self.stdout}\n{self.stderr}")
        return found[-1]


def _parse_report(stdout):
    """The json callback prints one document at the end; -v output may come before it."""
    for start in [0] + [index + 1 for index, char in enumerate(stdout) if char == "\n"]:
        if stdout.startswith("{", start):
            try:
                return json.loads(stdout[start:])
            except json.JSONDecodeError:
                continue
    return {}


def run_playbook(lab, playbook, extra_vars=None, check=False, extra_args=(), env=None):
    """Run ``playbook`` (a name in tests/e2e/playbooks or a path) against ``lab`` on localhost."""
    path = Path(playbook)
    if not path.is_absolute() and not path.exists():
        path = PLAYBOOKS / playbook
    command = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(_collection_root() / "inventory.ini"), str(path)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if check:
        command.append("--check")
    command += list(extra_args)
    environment = lab.environment(**collection_environment(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    environment.update(env or {})
    completed = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                               timeout=PLAYBOOK_TIMEOUT, check=False)
    return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, _parse_report(completed.stdout))
