#!/usr/bin/env bash
# The AWX rehearsal against a running lab (run it through scripts/with-lab.sh demo -- ...): set up the lab's
# accounts and history table as the setup job template would, then run the controller configuration's
# "DRS rollout" workflow the way AWX runs it (scripts/awx_rehearsal.py), its deploy nodes sliced.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${VENV_BIN:-.venv/bin}
mkdir -p out/awx-rehearsal

echo "== Create the install document in the source account and the history table"
"$bin/ansible-playbook" playbooks/setup_accounts.yml -e @playbooks/vars/lab_demo_setup.yml
"$bin/ansible-playbook" playbooks/setup_history.yml
echo "== Run the workflow \"DRS rollout\" as AWX runs it (one job per slice, by ansible-runner)"
"$bin/python" scripts/awx_rehearsal.py --vars playbooks/vars/lab_controller.yml \
    --json out/awx-rehearsal/result.json "$@"
