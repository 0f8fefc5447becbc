# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan of a check-mode run as files for a pipeline: ``plan.json`` (machine-readable) and ``plan.md`` (a
pull-request comment). Both are built from what check mode computed: the plan (waves, account-regions,
instances without a wave, those left out, the unreachable account-regions) and what each account-region's
installs would do; the statuses are those of module_utils.outcomes.
"""

import os

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import write_json
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import write_text

PLAN_JSON = "plan.json"
PLAN_MARKDOWN = "plan.md"
# The settings that shape a plan, as plan.json shows them (never an external id).
INPUT_SETTINGS = ("waves", "tag_filters", "wave_tag_key", "priority_tag_key", "reinstall", "limit_to_instance_ids")
ACCOUNT_FIELDS = ("account_id", "name", "regions", "role_arn", "staging_account_id", "drs_region", "target_account_id")
# A list longer than this goes into a <details> block of plan.md.
INLINE_ITEMS = 10


def plan_document(plan, details, settings, accounts):
    """plan.json's content. ``details`` maps each place of the plan to what its installs would do
    (``would_install``, ``would_reinstall``, ``would_adopt``, ``would_skip``), or to ``{"error": text}`` when
    the account-region could not be planned; such a place counts as unreachable."""
    names = {instance.instance_id: instance.name for instance in plan.every_instance()}
    unreachable = [dict(entry) for entry in plan.unreachable]
    waves = []
    for wave in plan.waves:
        places = []
        for place in wave.places:
            plan_of = details[place]
            entry = {"account_id": place.account_id, "region": place.region,
                     "staging_account_id": place.staging_account_id, "drs_region": place.drs_region,
                     "install": [], "reinstall": [], "adopt": [], "skip": []}
            if "error" in plan_of:
                unreachable.append({"account_id": place.account_id, "region": place.region,
                                    "reason": f"wave {wave.number} cannot be planned: {plan_of['error']}"})
                entry["error"] = plan_of["error"]
            else:
                entry.update(
                    install=[_named(iid, names) for iid in plan_of["would_install"]],
                    reinstall=[_named(iid, names) for iid in plan_of["would_reinstall"]],
                    adopt=[dict(_named(item["instance_id"], names), command_id=item["command_id"])
                           for item in plan_of["would_adopt"]],
                    skip=[dict(_named(item["instance_id"], names), status=item["status"], reason=item["reason"])
                          for item in plan_of["would_skip"]])
            places.append(entry)
        waves.append({"wave": wave.number, "places": places, "totals": _totals(places)})
    every_place = [place for wave in waves for place in wave["places"]]
    totals = dict(_totals(every_place), no_wave=len(plan.no_wave), excluded=len(plan.left_out),
                  unreachable=len(unreachable))
    return {
        "deployment_pattern": plan.pattern,
        "clean": not unreachable,
        "changed": bool(totals["install"] or totals["reinstall"]),
        "totals": totals,
        "waves": waves,
        "no_wave": [dict(_named(instance.instance_id, names), status=outcomes.NO_WAVE,
                         reason=instance.result.get("reason", "")) for instance in plan.no_wave],
        "excluded": [dict(_named(instance.instance_id, names), wave=instance.wave, reason=reason)
                     for instance, reason in plan.left_out],
        "unreachable": unreachable,
        "inputs": {
            "deployment_pattern": plan.pattern,
            "accounts": [{key: account[key] for key in ACCOUNT_FIELDS if account.get(key)} for account in accounts],
            **{key: settings[key] for key in INPUT_SETTINGS},
        },
    }


def _named(instance_id, names):
    return {"instance_id": instance_id, "name": names.get(instance_id, "")}


def _totals(places):
    skips = outcomes.count(item["status"] for place in places for item in place["skip"])
    return {"install": sum(len(place["install"]) for place in places),
            "reinstall": sum(len(place["reinstall"]) for place in places),
            "adopt": sum(len(place["adopt"]) for place in places),
            "skip": sum(skips.values()),
            "skip_by_status": {status: number for status, number in skips.items() if number}}


def markdown(document):
    """plan.md: the plan as a pull-request comment; a summary table per wave and account, the instance lists
    under it (in a <details> block when long)."""
    totals = document["totals"]
    verdict = ("Clean: every account-region was reached." if document["clean"] else
               f"**Not clean**: {totals['unreachable']} account(s) or account-region(s) could not be reached; "
               "applying would leave them out.")
    lines = ["## DRS agent rollout plan", "",
             f"Deployment pattern: {document['deployment_pattern']}. {verdict}", "",
             f"Would install {totals['install']}, reinstall {totals['reinstall']}, adopt {totals['adopt']} install(s) "
             f"already running, skip {totals['skip']}" + _skip_text(totals["skip_by_status"])
             + f"; {totals['no_wave']} without a wave, {totals['excluded']} left out by the limit or the waves filter.",
             ""]
    if document["waves"]:
        lines += ["| Wave | Account | Region | Install | Reinstall | Adopt | Skip |",
                  "| ---: | --- | --- | ---: | ---: | ---: | --- |"]
        for wave in document["waves"]:
            for place in wave["places"]:
                skip = ("cannot be planned" if "error" in place else
                        str(len(place["skip"])) + _skip_text(_totals([place])["skip_by_status"]))
                lines.append(f"| {wave['wave']} | {place['account_id']} | {place['region']} | {len(place['install'])} "
                             f"| {len(place['reinstall'])} | {len(place['adopt'])} | {skip} |")
        lines.append("")
    if document["unreachable"]:
        lines += ["### Not reachable", "", "| Account | Region | Reason |", "| --- | --- | --- |"]
        lines += [f"| {entry['account_id']} | {entry.get('region') or 'all'} | {_cell(entry['reason'])} |"
                  for entry in document["unreachable"]]
        lines.append("")
    for wave in document["waves"]:
        for place in wave["places"]:
            title = f"Wave {wave['wave']}, {place['account_id']}/{place['region']}"
            lines += _listing(f"{title}: install", [_instance(item) for item in place["install"] + place["reinstall"]])
            lines += _listing(f"{title}: adopt", [f"{_instance(item)}: command {item['command_id']}"
                                                  for item in place["adopt"]])
            lines += _listing(f"{title}: skip", [f"{_instance(item)}: {item['status']}: {item['reason']}"
                                                 for item in place["skip"]])
    lines += _listing("Without a wave", [f"{_instance(item)}: {item['reason']}" for item in document["no_wave"]])
    lines += _listing("Left out", [f"{_instance(item)}: {item['reason']}" for item in document["excluded"]])
    return "\n".join(lines).rstrip("\n") + "\n"


def _skip_text(by_status):
    return f" ({', '.join(f'{number} {status}' for status, number in by_status.items())})" if by_status else ""


def _instance(item):
    return f"`{item['instance_id']}`" + (f" {item['name']}" if item.get("name") else "")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _listing(title, items):
    if not items:
        return []
    bullets = [f"- {item}" for item in items]
    if len(items) <= INLINE_ITEMS:
        return [f"**{title}** ({len(items)})", ""] + bullets + [""]
    return [f"<details><summary>{title} ({len(items)})</summary>", ""] + bullets + ["", "</details>", ""]


def write_plan(directory, document, text):
    """Write plan.json and plan.md into ``directory``, each replaced in one step; their paths."""
    json_path = os.path.join(directory, PLAN_JSON)
    markdown_path = os.path.join(directory, PLAN_MARKDOWN)
    write_json(json_path, document)
    write_text(markdown_path, text)
    return json_path, markdown_path
