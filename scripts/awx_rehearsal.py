"""Run the controller configuration's "DRS rollout" workflow the way AWX / Automation Platform runs it, without
a controller: the next best thing to an AWX server, against the lab (make awx-rehearsal).

What AWX does, and so does this:
- an inventory update runs an inventory source (ansible-inventory on its file, with the credentials injected and,
  for a source from a project, its source variables as environment keys) and keeps its hosts; every inventory
  that a node of the workflow runs on is updated once, before the workflow;
- each workflow node is a job run by ansible-runner (AWX's own job engine) in a private data dir of its own, with
  the job template's playbook, the node's limit and extra variables, the credential type's injectors applied
  (environment keys and extra variables) and AWX's job variables (awx_job_id, awx_workflow_job_id, ...);
- a job runs on the workflow's inventory, else the node's, when its template prompts for an inventory
  (ask_inventory_on_launch), and on its template's inventory otherwise; an inventory without a source has no host;
- a job template with job_slice_count N above 1 becomes a workflow job of its own (a sliced job) whose
  min(N, hosts) jobs run at the same time, each on slice k of the job's inventory: the enabled hosts sorted by
  name, dealt round-robin (hosts[k-1::N]); the node's limit then applies inside each slice, as ansible-playbook's
  --limit;
- a node runs once its parent ended and the edge it hangs on (success, failure, always) matches; an artifact a job
  sets with set_stats becomes an extra variable of every later node (the workflow's own extra variables win over
  artifacts, which win over the node's extra_data, as AWX merges them);
- a sliced job fails when one of its slices fails.

It prints, per node: slices, instances, installed, failed, duplicate installs (from the lab's record of every
install command) and seconds; --json writes the same with every job's details.

    scripts/with-lab.sh demo -- .venv/bin/python scripts/awx_rehearsal.py --vars playbooks/vars/lab_controller.yml
"""

import argparse
import concurrent.futures
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import ansible_runner
import jinja2
import yaml

ROOT = Path(__file__).resolve().parent.parent
# the collection as Ansible finds it (make's build/collections link, or the tests' collections root)
sys.path[:0] = os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "build" / "collections")).split(os.pathsep)

# pylint: disable=wrong-import-position
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import controller  # noqa: E402

# the ansible-* commands of this interpreter's environment, as an execution environment has its own
ANSIBLE_BIN = Path(sys.executable).parent
ROLLOUT_ACTION = "drs_orchestration.agent_deployer.drs_rollout"
EDGES = ("success_nodes", "failure_nodes", "always_nodes")
PASSED_ON = ("PATH", "HOME", "LANG", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED", "AWS_DEFAULT_REGION",
             "DRS_AGENT_DEPLOYER_CLOCK", "PYTHONPATH")
# AWX job ids: distinct numbers for jobs and workflow jobs, as the controller's database hands them out
_ids = itertools.count(1001)
_ids_lock = threading.Lock()


def next_id():
    with _ids_lock:
        return next(_ids)


# --- what AWX builds for a job ------------------------------------------------------------------------

def inject(credential_type, credential):
    """The environment keys and extra variables a credential of this type injects (AWX renders its injector
    templates with the credential's inputs; a field left empty renders as its default, the empty string)."""
    inputs = {field["id"]: field.get("default", "") for field in credential_type["inputs"]["fields"]}
    inputs.update(credential.get("inputs") or {})
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    injectors = credential_type.get("injectors") or {}
    env = {key: environment.from_string(value).render(**inputs) for key, value in (injectors.get("env") or {}).items()}
    extra = {key: environment.from_string(value).render(**inputs)
             for key, value in (injectors.get("extra_vars") or {}).items()}
    return env, extra


def slice_hosts(hosts, number, count):
    """AWX's slice ``number`` (1-based) of ``count``: the enabled hosts sorted by name, dealt round-robin."""
    ordered = sorted(name for name, variables in hosts.items() if variables.get("enabled", True) is not False)
    return ordered[number - 1::count]


def inventory_of(hostnames, inventory):
    """A static inventory holding ``hostnames`` with their variables and groups (AWX's slice inventory)."""
    wanted = set(hostnames)
    groups = {}
    for group, members in inventory["groups"].items():
        kept = sorted(wanted & set(members))
        if kept:
            groups[group] = {"hosts": dict.fromkeys(kept, {})}
    return {"all": {"hosts": {name: inventory["hosts"][name] for name in hostnames}, "children": groups}}


def plain(mapping):
    """ansible-inventory's JSON marks text that came from outside as {"__ansible_unsafe": text}: the text."""
    if set(mapping) == {"__ansible_unsafe"}:
        return mapping["__ansible_unsafe"]
    return mapping


NO_HOST = {"hosts": {}, "groups": {}}


def update_inventory(source_path, env):
    """The hosts (with their variables) and groups an inventory update finds, as AWX keeps them."""
    with tempfile.TemporaryDirectory(prefix="awx-inventory-update-") as private:
        # the listing goes to a file: ansible-runner makes an event of every line of a command's output, and the
        # listing of a large estate is millions of lines
        listing = Path(private) / "inventory.json"
        runner = ansible_runner.run_command(
            executable_cmd=str(ANSIBLE_BIN / "ansible-inventory"),
            cmdline_args=["-i", str(ROOT / source_path), "--list", "--export", "--output", str(listing)],
            # as AWX's inventory updates: a source that cannot be parsed fails the update
            envvars=dict(env, ANSIBLE_INVENTORY_UNPARSED_FAILED="True"), private_data_dir=private, quiet=True, suppress_env_files=True)
        stdout, stderr, rc = runner
        if rc != 0:
            raise SystemExit(f"inventory update of {source_path} failed (rc {rc}):\n{stderr or stdout}")
        listed = json.loads(listing.read_text(encoding="utf-8"), object_hook=plain)
    hosts = listed.get("_meta", {}).get("hostvars", {})
    groups = {}

    def members(group):
        entry = listed.get(group) or {}
        found = set(entry.get("hosts") or [])
        for child in entry.get("children") or []:
            found |= members(child)
        return found

    for group in listed:
        if group not in ("_meta", "all", "ungrouped"):
            groups[group] = sorted(members(group))
    if not hosts:
        raise SystemExit(f"inventory update of {source_path} found no host:\n{stderr}")
    return {"hosts": hosts, "groups": groups}


# --- one job --------------------------------------------------------------------------------------------

def run_job(template, hostnames, inventory, extravars, limit, env, collections_path):
    """Run one job (a job template on ``hostnames``) with ansible-runner; its status, rc, artifacts, the rollout
    task's result and its output, in a private data dir removed afterwards."""
    job_id = extravars["awx_job_id"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"awx-job-{job_id}-") as private:
        env = dict(env, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1")
        runner = ansible_runner.run(
            private_data_dir=private, project_dir=str(ROOT), playbook=template["playbook"],
            inventory=inventory_of(hostnames, inventory), extravars=extravars, limit=limit or None,
            envvars=env, quiet=True, suppress_env_files=True, ident=str(job_id))
        rollout = None
        artifacts = {}
        for event in runner.events:
            data = event.get("event_data") or {}
            if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("task_action") == ROLLOUT_ACTION:
                rollout = data.get("res")
            if event.get("event") == "playbook_on_stats":
                artifacts = data.get("artifact_data") or {}
        output = runner.stdout.read()
        status, rc = runner.status, runner.rc
    return {"job_id": job_id, "hosts": hostnames, "status": status, "rc": rc, "artifacts": artifacts,
            "rollout": rollout, "seconds": round(time.monotonic() - started, 1), "output": output}


# --- the workflow ---------------------------------------------------------------------------------------

def job_inventory(workflow, node, template):
    """The name of the inventory a node's job runs on, by AWX's rule: the workflow's own inventory, then the node's,
    count only when the template prompts for an inventory."""
    if template.get("ask_inventory_on_launch"):
        for given in (workflow.get("inventory"), node.get("inventory")):
            if given:
                return given["name"] if isinstance(given, dict) else given
    return template["inventory"]


class Rehearsal:
    def __init__(self, definitions, inventories, env, injected_vars, collections_path, lab_url):
        self.templates = {template["name"]: template for template in definitions["job_templates"]}
        self.inventories = inventories
        self.env = env
        self.injected_vars = injected_vars
        self.collections_path = collections_path
        self.lab_url = lab_url
        self.nodes = []

    def run_workflow(self, workflow, relaunch=None):
        """Run every node of ``workflow`` in AWX's order; ``relaunch`` (node identifier, slice number) runs that
        slice job once more right after its node, as an operator relaunching it would."""
        workflow_job_id = next_id()
        nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
        children = {identifier: {edge: [child["identifier"] for child in (node.get("related") or {}).get(edge) or []]
                                 for edge in EDGES} for identifier, node in nodes.items()}
        has_parent = {child for edges in children.values() for kids in edges.values() for child in kids}
        ready = [identifier for identifier in nodes if identifier not in has_parent]
        artifacts = {}
        ran = set()
        while ready:
            identifier = ready.pop(0)
            if identifier in ran:
                continue
            ran.add(identifier)
            node = nodes[identifier]
            # AWX: the node's extra_data, then the ancestors' artifacts, then the workflow's own extra variables
            extravars = dict(node.get("extra_data") or {})
            extravars.update(artifacts)
            extravars.update(workflow.get("extra_vars") or {})
            result = self.run_node(workflow, node, extravars, workflow_job_id)
            if relaunch and relaunch[0] == identifier:
                result["relaunched"] = self.relaunch(workflow, node, extravars, relaunch[1], result)
            self.nodes.append(result)
            artifacts.update(result["artifacts"])
            edge = "success_nodes" if result["status"] == "successful" else "failure_nodes"
            ready.extend(children[identifier][edge] + children[identifier]["always_nodes"])
        return {"workflow_job_id": workflow_job_id, "nodes": self.nodes,
                "inventories": {name: {"hosts": sorted(inventory["hosts"]), "groups": inventory["groups"]}
                                for name, inventory in self.inventories.items()},
                "status": "successful" if all(n["status"] == "successful" for n in self.nodes) else "failed"}

    def _job_vars(self, template, job_id, workflow_job_id, workflow_name, extravars):
        variables = dict(template.get("extra_vars") or {})
        variables.update(extravars)
        variables.update(self.injected_vars)
        for prefix in ("awx", "tower"):
            variables.update({f"{prefix}_job_id": job_id, f"{prefix}_job_template_name": template["name"],
                              f"{prefix}_workflow_job_id": workflow_job_id,
                              f"{prefix}_workflow_job_name": workflow_name, f"{prefix}_job_launch_type": "workflow"})
        return variables

    def _job(self, workflow, node):
        """(the node's template, the name of its job's inventory, that inventory, its limit, its slice count)."""
        template = self.templates[node["unified_job_template"]["name"]]
        name = job_inventory(workflow, node, template)
        inventory = self.inventories.get(name, NO_HOST)
        limit = node.get("limit") or template.get("limit") or ""
        # AWX: never more slices than the inventory has hosts
        count = max(1, min(int(template.get("job_slice_count") or 1), len(inventory["hosts"])))
        return template, name, inventory, limit, count

    def run_node(self, workflow, node, extravars, workflow_job_id):
        template, name, inventory, limit, count = self._job(workflow, node)
        started, started_at = time.monotonic(), time.time()
        before = self.install_commands()
        if count > 1:
            # a sliced job is a workflow job of its own: its slices share its id, not the outer workflow's
            sliced_id = next_id()
            hostnames = [slice_hosts(inventory["hosts"], number, count) for number in range(1, count + 1)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
                jobs = list(pool.map(
                    lambda hosts: run_job(template, hosts, inventory,
                                          self._job_vars(template, next_id(), sliced_id, template["name"], extravars),
                                          limit, self.env, self.collections_path), hostnames))
        else:
            jobs = [run_job(template, sorted(inventory["hosts"]), inventory,
                            self._job_vars(template, next_id(), workflow_job_id, workflow["name"], extravars),
                            limit, self.env, self.collections_path)]
        result = self._node_result(node, template, name, jobs, limit, before, time.monotonic() - started)
        result.update(started_at=started_at, ended_at=time.time())
        return result

    def relaunch(self, workflow, node, extravars, number, first):
        """Relaunch slice ``number`` of a sliced node's job: a job of its own, outside the slice workflow (AWX's
        relaunch of one slice job), with the deployment id the first launch passed on."""
        template, name, inventory, limit, count = self._job(workflow, node)
        hosts = slice_hosts(inventory["hosts"], number, count)
        extravars = dict(extravars)
        extravars.update(first["artifacts"])
        before = self.install_commands()
        started = time.monotonic()
        job = run_job(template, hosts, inventory,
                      self._job_vars(template, next_id(), "", "", extravars), limit, self.env, self.collections_path)
        return self._node_result(node, template, name, [job], limit, before, time.monotonic() - started)

    def _node_result(self, node, template, inventory_name, jobs, limit, before, seconds):
        artifacts = {}
        for job in jobs:
            artifacts.update(job["artifacts"])
        totals = [job["rollout"]["summary"]["totals"] for job in jobs
                  if job["rollout"] and "summary" in job["rollout"]]
        inventory = self.inventories.get(inventory_name, NO_HOST)
        limited = set(inventory["hosts"]) if not limit else set(inventory["groups"].get(limit, []))
        limited &= {host for job in jobs for host in job["hosts"]}
        for job in jobs:
            job["limited_hosts"] = sorted(limited & set(job["hosts"]))
        deploys = bool(totals)  # the figures of a node whose jobs ran the rollout
        return {
            "identifier": node["identifier"], "job_template": template["name"], "playbook": template["playbook"],
            "inventory": inventory_name, "limit": limit, "slices": len(jobs), "instances": len(limited) if deploys else None,
            "installed": sum(total["installed"] for total in totals) if deploys else None,
            "failed": sum(total["failed"] for total in totals) if deploys else None,
            "duplicate_installs": duplicate_installs(before, self.install_commands()),
            "status": "successful" if all(job["status"] == "successful" for job in jobs) else "failed",
            "seconds": round(seconds, 1), "artifacts": artifacts, "jobs": jobs,
        }

    def install_commands(self):
        """The lab's record of every install command (None without a lab)."""
        if not self.lab_url:
            return None
        with urllib.request.urlopen(f"{self.lab_url}/_lab/invocations", timeout=60) as answer:
            return [command for command in json.load(answer)["commands"] if command["installs_agent"]]


def duplicate_installs(before, after):
    """Installs a node sent to an instance whose earlier install had not failed: one still running, or one that
    succeeded. None without the lab's record."""
    if after is None:
        return None
    known = {command["command_id"] for command in before or []}
    per_instance = {}
    for command in after:
        for invocation in command["invocations"]:
            per_instance.setdefault(invocation["instance_id"], []).append(
                {"requested_at": command["requested_at"], "command_id": command["command_id"], "invocation": invocation})
    duplicates = 0
    for sent in per_instance.values():
        sent.sort(key=lambda entry: entry["requested_at"])
        for before_it, later in zip(sent, sent[1:]):
            if later["command_id"] in known:
                continue
            earlier = before_it["invocation"]
            still_running = earlier["ended_at"] is None or earlier["ended_at"] > later["requested_at"]
            if still_running or earlier["status"] == "Success":
                duplicates += 1
    return duplicates


# --- command line -----------------------------------------------------------------------------------

def shown(value):
    return "-" if value is None else value


def load_definitions(vars_file):
    """The controller configuration's definitions, from the same function the role sends them with."""
    variables = yaml.safe_load(Path(vars_file).read_text(encoding="utf-8")) or {}
    return controller.definitions(variables)


def prepare(definitions, workflow_name):
    """(the rehearsal, the workflow to run) of the controller configuration's ``definitions``, after the inventory
    update, with the environment AWX would give its jobs."""
    [workflow] = [entry for entry in definitions["workflow_job_templates"] if entry["name"] == workflow_name]
    [credential] = definitions["credentials"]
    [credential_type] = [entry for entry in definitions["credential_types"]
                         if entry["name"] == credential["credential_type"]]
    injected_env, injected_vars = inject(credential_type, credential)
    # AWX starts jobs in an execution environment with no AWS configuration of its own: the injected
    # credentials, and (here) the way to the lab and its clock
    base = {key: os.environ[key] for key in PASSED_ON if key in os.environ}
    base["PATH"] = os.pathsep.join([str(ANSIBLE_BIN), base.get("PATH", os.defpath)])
    os.environ["PATH"] = base["PATH"]  # ansible-runner finds ansible-playbook on it
    for key in [key for key in os.environ if key.startswith("AWS_") and key not in PASSED_ON]:
        del os.environ[key]  # ansible-runner hands its own environment on to the jobs, as an EE has none of these
    env = dict(base, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, **injected_env)
    templates = {template["name"]: template for template in definitions["job_templates"]}
    used = {job_inventory(workflow, node, templates[node["unified_job_template"]["name"]])
            for node in workflow["workflow_nodes"]}
    inventories = {}
    for source in definitions["inventory_sources"]:
        if source["inventory"] in used:
            # AWX: an SCM source's variables reach its update as environment keys, unless the update sets them
            source_env = {str(key): str(value) for key, value in (source.get("source_vars") or {}).items()}
            inventories[source["inventory"]] = update_inventory(source["source_path"], dict(source_env, **env))
    collections_path = os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "build" / "collections"))
    lab_url = os.environ.get("LAB_ENDPOINT_URL")
    return Rehearsal(definitions, inventories, env, injected_vars, collections_path, lab_url), workflow


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--vars", required=True, help="the controller configuration's variables (YAML)")
    parser.add_argument("--workflow", default="DRS rollout", help="the workflow job template to run")
    parser.add_argument("--relaunch", default=None,
                        help="NODE:SLICE, relaunch that slice job of that node right after the node")
    parser.add_argument("--json", default=None, help="write the results there")
    args = parser.parse_args(argv)

    rehearsal, workflow = prepare(load_definitions(args.vars), args.workflow)
    relaunch = None
    if args.relaunch:
        identifier, number = args.relaunch.rsplit(":", 1)
        relaunch = (identifier, int(number))
    result = rehearsal.run_workflow(workflow, relaunch)
    print(f"workflow {workflow['name']!r} (workflow job {result['workflow_job_id']}): {result['status']}")
    print(f"{'node':<24} {'slices':>6} {'instances':>9} {'installed':>9} {'failed':>6} {'duplicates':>10} {'s':>7}  status")
    for node in result["nodes"]:
        for row, label in ((node, node["identifier"]), (node.get("relaunched"), "  relaunched slice")):
            if row:
                figures = [shown(row[key]) for key in ("instances", "installed", "failed", "duplicate_installs")]
                print(f"{label:<24} {row['slices']:>6} {figures[0]:>9} {figures[1]:>9} {figures[2]:>6} {figures[3]:>10} "
                      f"{row['seconds']:>7}  {row['status']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if result["status"] == "successful" else 1


if __name__ == "__main__":
    sys.exit(main())
