# -*- coding: utf-8 -*-
# Copyright: drs_orchestration developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment's build context, as `make ee-context` writes it and an image build uses it.

No image can be built here (no container engine, no registry), so these tests check what the build would
install: the Containerfile's stages, the Galaxy requirements with this collection's artifact inside the
context, the collection installed from it with the requirement files its meta/execution-environment.yml
names, and the Python requirements that ansible-builder's own introspection script (shipped in the context,
run by the image build) collects from it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMESPACE, NAME = "drs_orchestration", "agent_deployer"


def _load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(command), result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(name="context", scope="module")
def fixture_context(tmp_path_factory):
    """The build context from the Makefile's own target, written to a temporary folder."""
    make = shutil.which("make")
    if make is None:
        pytest.fail("make not found: it writes the build context (make ee-context)")
    context = tmp_path_factory.mktemp("ee") / "context"
    _run([make, "--no-print-directory", "ee-context", "EE_CONTEXT=%s" % context], cwd=ROOT)
    return context


@pytest.fixture(name="containerfile", scope="module")
def fixture_containerfile(context):
    path = context / "Containerfile"
    assert path.is_file(), sorted(p.name for p in context.iterdir())
    return path.read_text(encoding="utf-8")


@pytest.fixture(name="galaxy_requirements", scope="module")
def fixture_galaxy_requirements(context):
    return _load_yaml(context / "_build" / "requirements.yml")["collections"]


@pytest.fixture(name="artifact_in_context", scope="module")
def fixture_artifact_in_context(context, galaxy_requirements):
    """The artifact the image build installs: the requirement of type file, from the folder where the
    Containerfile runs ansible-galaxy (the context's _build, copied to /build)."""
    files = [entry["name"] for entry in galaxy_requirements if entry.get("type") == "file"]
    assert len(files) == 1, galaxy_requirements
    path = context / "_build" / files[0]
    assert path.is_file(), "%s is not in the build context" % files[0]
    return path


@pytest.fixture(name="image_collections", scope="module")
def fixture_image_collections(context, tmp_path_factory):
    """The collections as the image's Galaxy stage installs them: its command, from the context's _build
    folder (offline: amazon.aws must be the version installed here, the one the tests run with)."""
    collections = tmp_path_factory.mktemp("collections")
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    install = [galaxy, "collection", "install", "--offline", "-r", "requirements.yml", "--collections-path", str(collections)]
    _run(install, cwd=str(context / "_build"))
    return collections


@pytest.fixture(name="installed", scope="module")
def fixture_installed(image_collections):
    return image_collections / "ansible_collections" / NAMESPACE / NAME


@pytest.fixture(name="introspected", scope="module")
def fixture_introspected(context, image_collections):
    """The requirements that the context's introspection script collects, as the image's builder stage runs it."""
    introspect = [sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect", str(image_collections)]
    return yaml.safe_load(_run(introspect, cwd=str(image_collections)))


def _build_arg(containerfile, name):
    match = re.search(r'^ARG %s="([^"]*)"' % name, containerfile, re.MULTILINE)
    assert match, "ARG %s missing from the Containerfile" % name
    return match.group(1)


def _constraint(package):
    with open(os.path.join(ROOT, "constraints.txt"), encoding="utf-8") as handle:
        pins = dict(line.strip().split("==") for line in handle if "==" in line)
    return pins[package]


def test_containerfile_installs_ansible_core_and_runner_as_tested(containerfile):
    refs = shlex.split(_build_arg(containerfile, "ANSIBLE_INSTALL_REFS"))
    assert "ansible-core==%s" % _constraint("ansible-core") in refs
    assert [ref for ref in refs if ref.startswith("ansible-runner==")], refs
    assert "pip install --no-cache-dir $ANSIBLE_INSTALL_REFS" in containerfile


def test_containerfile_installs_the_galaxy_requirements_from_the_context(containerfile):
    assert "COPY _build /build\nWORKDIR /build" in containerfile
    assert re.search(r"ansible-galaxy collection install .*-r requirements\.yml", containerfile)


@pytest.mark.usefixtures("image_collections")
def test_galaxy_requirements_pin_amazon_aws(galaxy_requirements):
    # the offline install of the requirements (image_collections) proves the pin is the version tested here
    amazon_aws = [entry for entry in galaxy_requirements if entry["name"] == "amazon.aws"]
    assert len(amazon_aws) == 1 and amazon_aws[0]["version"].startswith("=="), galaxy_requirements


def test_context_holds_this_collections_artifact(artifact_in_context):
    galaxy = _load_yaml(os.path.join(ROOT, "galaxy.yml"))
    with tarfile.open(str(artifact_in_context), "r:gz") as tar:
        info = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (NAMESPACE, NAME, galaxy["version"])


def test_installed_collection_declares_its_execution_environment(installed):
    meta = _load_yaml(installed / "meta" / "execution-environment.yml")
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    assert (installed / "bindep.txt").is_file()


def test_image_gets_boto3_and_botocore_from_this_collection(introspected):
    ours = [line for line in introspected["python"] if line.endswith("# from collection %s.%s" % (NAMESPACE, NAME))]
    assert sorted(re.match(r"[A-Za-z0-9_.-]+", line).group(0) for line in ours) == ["boto3", "botocore"]
