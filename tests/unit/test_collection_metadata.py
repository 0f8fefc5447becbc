# -*- coding: utf-8 -*-
# Copyright: drs_orchestration developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on the collection as a user receives it: the built artifact and its metadata."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Paths that belong to development only and must never be shipped.
NOT_SHIPPED = (
    "lab",
    "tests/lab",
    "tests/conftest.py",
    "tests/lab_fixture.py",
    "tests/__init__.py",
    "pytest.ini",
    "inventories/lab",
    "tests/e2e",
    "tests/lab_clock.py",
    # they read galaxy.yml and run the Makefile, which only the repository has
    "tests/unit/test_collection_metadata.py",
    "tests/unit/test_execution_environment.py",
    "ee",
    "scripts",
    "ansible.cfg",
    ".venv",
    "build",
    "out",
    ".ci",
    "tests/output",
    ".git",
    ".gitignore",
    ".ansible",
    ".ansible-lint",
    "Makefile",
    "constraints.txt",
)


def _load_yaml(relative_path):
    with open(os.path.join(ROOT, relative_path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _ansible_galaxy():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("ansible-galaxy")
    if found is None:
        pytest.fail("ansible-galaxy not found: install tests/requirements.txt (make test does)")
    return found


@pytest.fixture(name="galaxy", scope="module")
def fixture_galaxy():
    return _load_yaml("galaxy.yml")


@pytest.fixture(name="artifact", scope="module")
def fixture_artifact(galaxy, tmp_path_factory):
    """Build the collection with ansible-galaxy into a temporary folder and open the tarball."""
    output = tmp_path_factory.mktemp("artifact")
    subprocess.run(
        [_ansible_galaxy(), "collection", "build", "--force", "--output-path", str(output), ROOT],
        check=True,
        capture_output=True,
        text=True,
        cwd=str(output),
    )
    expected = output / "{namespace}-{name}-{version}.tar.gz".format(**galaxy)
    assert expected.is_file(), "artifact not built: %s" % sorted(p.name for p in output.iterdir())
    with tarfile.open(str(expected), "r:gz") as tar:
        yield tar


def _members(tar):
    return [name[2:] if name.startswith("./") else name for name in tar.getnames()]


def test_manifest_matches_galaxy_yml(artifact, galaxy):
    manifest = json.load(artifact.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert info["namespace"] == galaxy["namespace"] == "drs_orchestration"
    assert info["name"] == galaxy["name"] == "agent_deployer"
    assert info["version"] == galaxy["version"]
    assert info["license"] == ["GPL-3.0-or-later"]


def test_manifest_declares_amazon_aws_dependency(artifact):
    manifest = json.load(artifact.extractfile("MANIFEST.json"))
    dependencies = manifest["collection_info"]["dependencies"]
    assert "amazon.aws" in dependencies
    assert dependencies["amazon.aws"].startswith(">=")


def test_artifact_ships_collection_files(artifact):
    members = set(_members(artifact))
    for required in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml"):
        assert required in members


@pytest.mark.parametrize("excluded", NOT_SHIPPED)
def test_artifact_leaves_out_development_files(artifact, excluded):
    shipped = [m for m in _members(artifact) if m == excluded or m.startswith(excluded + "/")]
    assert not shipped, "%s must not be in the artifact: %s" % (excluded, shipped[:5])


def test_artifact_ships_example_vars_but_no_lab_vars(artifact):
    vars_files = fnmatch.filter(_members(artifact), "playbooks/vars/*.yml")
    assert not fnmatch.filter(vars_files, "playbooks/vars/lab_*"), vars_files
    assert "playbooks/vars/deploy_multi_account.example.yml" in vars_files


def test_shipped_tests_import_nothing_of_the_repository(artifact):
    """The tests in the artifact run from an installed collection: they import neither the lab nor the
    repository's test modules (tests/lab_fixture.py, tests/lab_clock.py), which are not shipped."""
    shipped_tests = [m for m in _members(artifact) if m.startswith("tests/") and m.endswith(".py")]
    assert "tests/unit/plugins/module_utils/test_outcomes.py" in shipped_tests
    repository_import = re.compile(r"^\s*(from|import)\s+(tests|lab)\b", re.MULTILINE)
    importing = [m for m in shipped_tests if repository_import.search(artifact.extractfile(m).read().decode("utf-8"))]
    assert not importing


def test_artifact_ships_execution_environment_requirements(artifact):
    """ansible-builder reads meta/execution-environment.yml from the installed collection; the files it
    names are in the artifact and ask for boto3 and botocore."""
    meta = yaml.safe_load(artifact.extractfile("meta/execution-environment.yml"))
    dependencies = meta["dependencies"]
    assert set(dependencies) == {"python", "system"}
    members = set(_members(artifact))
    assert {dependencies["python"], dependencies["system"]} <= members
    python = artifact.extractfile(dependencies["python"]).read().decode("utf-8")
    assert {"boto3", "botocore"} <= set(re.findall(r"^([A-Za-z0-9_.-]+)", python, re.MULTILINE))


def test_files_json_lists_no_lab_files(artifact):
    files = json.load(artifact.extractfile("FILES.json"))["files"]
    names = [entry["name"] for entry in files]
    assert not [n for n in names if n == "lab" or n.startswith(("lab/", "tests/lab/"))]


def test_action_group_extends_amazon_aws():
    runtime = _load_yaml("meta/runtime.yml")
    group = runtime["action_groups"]["drs"]
    metadata = [entry["metadata"] for entry in group if isinstance(entry, dict)]
    assert len(metadata) == 1
    assert metadata[0]["extend_group"] == ["amazon.aws.aws"]
    # Module names are short names of this collection's modules.
    assert all("." not in entry for entry in group if isinstance(entry, str))


def test_requires_ansible_is_a_full_version():
    runtime = _load_yaml("meta/runtime.yml")
    assert runtime["requires_ansible"] == ">=2.17.0"
