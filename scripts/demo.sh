#!/usr/bin/env bash
# The demo rehearsal against a running lab (run it through scripts/with-lab.sh demo -- ...):
# show the inventory by wave, create the collection's install document in the source account and
# the history table in the orchestration account, deploy the agents wave by wave (the run is
# recorded in the history), print the summary, and write the report of the last 24 hours.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${VENV_BIN:-.venv/bin}
summary=out/demo/summary.json
drill=out/demo/drill.json
report_dir=out/demo

echo "== Instances by wave, as the amazon.aws.aws_ec2 inventory sees them"
"$bin/ansible-inventory" -i inventories/lab/ --list | "$bin/python" -c '
import json
import sys

groups = json.load(sys.stdin)
waves = sorted((name for name in groups if name.startswith("wave_")), key=lambda name: int(name[5:]))
for name in waves:
    hosts = groups[name].get("hosts", [])
    print(f"{name}: {len(hosts)} instance(s)")
'
echo "== Create the install document in the source account"
"$bin/ansible-playbook" playbooks/setup_accounts.yml -e @playbooks/vars/lab_demo_setup.yml
echo "== Create the deployment history table in the orchestration account"
"$bin/ansible-playbook" playbooks/setup_history.yml
echo "== Deploy the agents wave by wave, extending the registered servers into the target account"
rm -f "$summary"
"$bin/ansible-playbook" -i inventories/lab/ playbooks/deploy_agents.yml -e @playbooks/vars/lab_demo_deploy.yml \
    -e drs_agent_deploy_summary_file="$summary"
echo "== Drill wave 1: launch its recovery instances in the target account, time them, terminate them"
rm -f "$drill"
"$bin/ansible-playbook" playbooks/drill.yml -e @playbooks/vars/lab_demo_deploy.yml \
    -e '{"drs_drill_waves": [1]}' -e drs_drill_rto_seconds=3600 -e drs_drill_poll_interval=10 \
    -e drs_drill_summary_file="$drill"
echo "== Report of the last 24 hours"
"$bin/ansible-playbook" playbooks/report.yml -e drs_report_output_dir="$report_dir"
echo "== Report: $root/$report_dir/report.html (with deployments.json, failures.csv, unprotected.csv, replication.csv and drills.csv); summary: $summary"
"$bin/python" - "$summary" "$drill" <<'PY'
import json
import sys

summary = json.load(open(sys.argv[1]))
drill = json.load(open(sys.argv[2]))
totals = summary["totals"]
print(
    f"{summary['deployment_pattern']}: {totals['attempted']} attempted, {totals['installed']} installed, "
    f"{totals['already_registered']} already registered, {totals['failed']} failed, {totals['skipped']} skipped, "
    f"in {len(summary['waves'])} waves and {summary['wall_seconds']} s"
)
if "extension" in summary:
    extension = summary["extension"]["totals"]
    print(
        f"extension into the target account: {extension['extended']} extended, "
        f"{extension['already_extended']} already extended, {extension['failed']} failed, {extension['left_out']} left out"
    )
replication = {}
for wave in summary["waves"]:
    for verdict, count in (wave.get("replication") or {}).items():
        replication[verdict] = replication.get(verdict, 0) + count
print(
    f"replication: {replication.get('healthy', 0)} of {sum(replication.values())} server(s) healthy"
    + "".join(f", {count} {verdict}" for verdict, count in sorted(replication.items()) if verdict != "healthy")
)
for wave in drill["waves"]:
    print(
        f"drill of wave {wave['wave']}: {wave['launched']} of {wave['servers']} server(s) launched in "
        f"{wave['recovery_seconds']} s (RTO {wave['rto_seconds']} s: {'exceeded' if wave['over_rto'] else 'met'}), "
        f"{drill['terminated']} recovery instance(s) terminated"
    )
PY
