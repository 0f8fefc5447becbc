# Build, lint and test drs_orchestration.agent_deployer.
#
# Every target creates (or reuses) the virtual environment .venv by itself,
# with the exact tool versions pinned in constraints.txt.
#
#   make demo    run the main job against the local AWS lab (no AWS account needed)
#   make test    lint + sanity + build + pytest
#   make help    list the targets

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VENV_BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.installed
LAB_REQUIREMENTS ?= lab/requirements.txt
REQUIREMENTS := requirements.txt tests/requirements.txt $(LAB_REQUIREMENTS)

SCENARIO ?= demo
LAB_PORT ?= 4566

NAMESPACE := drs_orchestration
NAME := agent_deployer
SANITY_ROOT := build/ansible_collections
SANITY_DIR := $(SANITY_ROOT)/$(NAMESPACE)/$(NAME)

# Tools (ansible-*, pytest, ...) come from .venv first.
export PATH := $(CURDIR)/$(VENV_BIN):$(PATH)

.PHONY: help venv test lint sanity build pytest lab lab-measure demo bench event-bench awx-rehearsal ee-context clean clean-venv

# test runs its steps in order, even under make -j.
.NOTPARALLEL:

help:
	@echo "make demo    run the main job against the local AWS lab (no AWS account needed)"
	@echo "make test    lint, sanity, build and every pytest test"
	@echo "make lint    ansible-lint (production profile) and antsibull-changelog lint"
	@echo "make sanity  ansible-test sanity on a copy under $(SANITY_DIR)"
	@echo "make build   build the collection artifact into build/"
	@echo "make ee-context  build the artifact and write the execution environment's build context to $(EE_CONTEXT)/"
	@echo "make lab     run the local AWS lab in the foreground (SCENARIO=$(SCENARIO) LAB_PORT=$(LAB_PORT))"
	@echo "make lab-measure  seed a scenario in-process and print seeding time and idle memory (SCENARIO=scale)"
	@echo "make bench   time the deploy playbook on the lab's scale scenario: overhead, AWS calls, memory (BENCH_ARGS=--time-scale N)"
	@echo "make event-bench  time event-driven protection: seconds from tag to SendCommand and to registration (BENCH_ARGS=--window N)"
	@echo "make awx-rehearsal  run the controller configuration's workflow as AWX runs it (sliced jobs by ansible-runner) against the lab"
	@echo "make clean   remove build output and caches (keeps .venv; 'make clean-venv' removes it)"

venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQUIREMENTS) constraints.txt
	test -x $(VENV_BIN)/python || $(PYTHON) -m venv $(VENV)
	$(VENV_BIN)/python -m pip install --quiet --upgrade pip
	$(VENV_BIN)/python -m pip install --quiet -c constraints.txt $(addprefix -r ,$(REQUIREMENTS))
	touch $@

test: lint sanity build
	$(MAKE) --no-print-directory pytest

# Test files run in parallel, each whole in one worker (--dist loadfile: a file's lab fixtures are
# shared by its tests); the end-to-end tests mostly wait on the lab and Ansible, so two workers
# finish in about two thirds of the time even on two cores.
PYTEST_WORKERS ?= 2

pytest: $(VENV_STAMP) browser java
	$(VENV_BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

# A Java runtime (Debian's package, 17 or later) for ansible-rulebook's rules engine, which the rulebook's tests
# run; installed only when no java is found, refreshing the package lists first when they are missing or stale.
.PHONY: java
java:
	if ! command -v java >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y openjdk-17-jre-headless || { apt-get update && apt-get install -y openjdk-17-jre-headless; }; \
	fi

# Headless Chromium (Debian's package) for the HTML report's browser test; installed only when no
# chromium binary is found, refreshing the package lists first when they are missing or stale.
.PHONY: browser
browser:
	if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	fi

lint: $(VENV_STAMP)
	$(VENV_BIN)/ansible-lint
	$(VENV_BIN)/antsibull-changelog lint

# ansible-test needs the collection under .../ansible_collections/NAMESPACE/NAME/,
# so sanity runs on a copy. The copy is made with tar (always there) rather than
# rsync (not installed everywhere). It leaves out the lab and its tests (not
# part of the collection), build output and caches; the scripts stay in so that
# the shellcheck test checks them.
#
# --venv rather than --local: with --venv ansible-test installs, in its own cached
# virtual environments, the exact checker versions (pylint, yamllint, voluptuous,
# ...) that this ansible-core release was validated with. --local would need all
# of those in .venv, where their pins would clash with constraints.txt.
#
# ansible-test lists the files to check with git when it finds a repository
# around them; the copy sits in this repository's ignored build/ folder, so it
# gets a repository of its own (no commit needed: untracked files are listed).
#
# Dependencies (amazon.aws) come from the `ansible` package in .venv; a link to
# them next to the copy makes them visible to ansible-test, which sets
# ANSIBLE_COLLECTIONS_PATH to build/.
sanity: $(VENV_STAMP)
	rm -rf $(SANITY_ROOT)
	mkdir -p $(SANITY_DIR)
	tar -c --exclude=./.venv --exclude=./build --exclude=./out --exclude=./lab \
	    --exclude=./tests/lab --exclude=./.git --exclude=./tests/output --exclude=./.ansible \
	    --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.tar.gz' -f - . \
	    | tar -x -C $(SANITY_DIR) -f -
	git -C $(SANITY_DIR) init --quiet
	purelib=$$($(VENV_BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	    ln -s "$$purelib/ansible_collections/amazon" $(SANITY_ROOT)/amazon
	pyver=$$($(VENV_BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    cd $(SANITY_DIR) && ansible-test sanity --venv --python "$$pyver" --color no

build: $(VENV_STAMP)
	$(VENV_BIN)/ansible-galaxy collection build --force --output-path build/

# The build context of the execution environment image (ee/execution-environment.yml) with the
# artifact that `build` just made; building the image itself needs podman or docker and a registry
# (see README). tests/unit/test_execution_environment.py runs this target.
EE_CONTEXT ?= build/ee
VERSION = $(shell sed -n 's/^version: *//p' galaxy.yml)
ARTIFACT = $(NAMESPACE)-$(NAME)-$(VERSION).tar.gz

# ansible-builder only warns when a file to copy is missing, so a version in galaxy.yml that
# ee/execution-environment.yml does not name yet fails here.
ee-context: build
	rm -rf $(EE_CONTEXT)
	$(VENV_BIN)/ansible-builder create --file ee/execution-environment.yml \
	    --context $(EE_CONTEXT) --output-filename Containerfile
	test -f $(EE_CONTEXT)/_build/collections/$(ARTIFACT) || \
	    { echo "ee/execution-environment.yml must name build/$(ARTIFACT)" >&2; exit 1; }

lab: $(VENV_STAMP)
	$(VENV_BIN)/python -m lab serve --scenario lab/scenarios/$(SCENARIO).yml --port $(LAB_PORT)

lab-measure: SCENARIO = scale
lab-measure: $(VENV_STAMP)
	$(VENV_BIN)/python -m lab measure --scenario lab/scenarios/$(SCENARIO).yml

# The collection as Ansible looks it up: a link to this checkout, so that playbooks run the code
# of the working tree (amazon.aws comes from the ansible package in .venv).
COLLECTIONS_DIR := build/collections
COLLECTION_LINK := $(COLLECTIONS_DIR)/ansible_collections/$(NAMESPACE)/$(NAME)

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

demo: $(VENV_STAMP) $(COLLECTION_LINK)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS_DIR) PYTHON=$(VENV_BIN)/python \
	    scripts/with-lab.sh demo -- scripts/demo.sh

# A benchmark, not a test: the deploy playbook on the lab's scale scenario (3,120 instances, six
# waves); prints wall time against the floor of the simulated installs, AWS calls per instance and
# the controller's peak memory, next to their targets. Exits non-zero only when the run is invalid.
# SCENARIO=scale-30k: the same on 31,200 instances in 120 account-regions (scripts/scale_copies.py);
# BENCH_ARGS="--awx-slices 4" then runs the controller's workflow as the AWX rehearsal does, 4 slices a wave.
bench: SCENARIO = scale
bench: $(VENV_STAMP) $(COLLECTION_LINK)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS_DIR) PYTHON=$(VENV_BIN)/python BENCH_SCENARIO=$(SCENARIO) \
	    scripts/with-lab.sh $(SCENARIO) -- $(VENV_BIN)/python scripts/bench.py $(BENCH_ARGS)

# The rulebook protect_new_instances against the lab's events scenario: 120 instances tagged at once, the seconds
# from each tag to its SendCommand and to its registration (BENCH_ARGS: --window, --instances, --time-scale).
event-bench: $(VENV_STAMP) $(COLLECTION_LINK) java
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS_DIR) PYTHON=$(VENV_BIN)/python \
	    scripts/with-lab.sh events -- $(VENV_BIN)/python scripts/event_bench.py $(BENCH_ARGS)

# No AWX server runs here: this runs the "DRS rollout" workflow of playbooks/configure_controller.yml's definitions
# as AWX would (each node a job by ansible-runner, sliced nodes as concurrent slice jobs, artifacts passed on)
# against the lab's demo scenario, and prints per node: slices, instances, installed, failed, duplicate installs
# and seconds (REHEARSAL_ARGS=--relaunch NODE:SLICE relaunches one slice job after its node).
awx-rehearsal: $(VENV_STAMP) $(COLLECTION_LINK)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLLECTIONS_DIR) PYTHON=$(VENV_BIN)/python \
	    scripts/with-lab.sh demo -- scripts/awx-rehearsal.sh $(REHEARSAL_ARGS)

clean:
	rm -rf build out tests/output .pytest_cache .ansible
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

clean-venv: clean
	rm -rf $(VENV)
