"""Scenario files: load, check against the schema and cross-references, and expand defaults."""

from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("scenario_schema.yml")
SCENARIO_DIR = Path(__file__).with_name("scenarios")

DEFAULTS = {
    "description": "",
    "seed": 0,
    "time_scale": 1.0,
    "instance_groups": [],
    "faults": {},
}
GROUP_DEFAULTS = {
    "name_pattern": "{group}-{index:03d}",
    "platform": "linux",
    "instance_type": "t3.medium",
    "state": "running",
    "tags": {},
    "ssm": "online",
    "replication": "healthy",
}
INSTALL_DEFAULTS = {"outcome": "success", "duration_seconds": [120, 300]}
RECOVERY_DEFAULTS = {"launch": "ok"}


class ScenarioError(ValueError):
    pass


def load_scenario(path):
    path = Path(path)
    if not path.exists() and not path.suffix:
        path = SCENARIO_DIR / f"{path}.yml"
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path} is not valid YAML: {exc}") from exc
    return expand(document, str(path))


def expand(document, origin="scenario"):
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        lines = [f"{origin}: {_where(error)}: {error.message}" for error in errors[:10]]
        raise ScenarioError("invalid scenario\n" + "\n".join(lines))
    scenario = {**DEFAULTS, **document}
    accounts = {account["id"]: account for account in scenario["accounts"]}
    names = {account["name"]: account["id"] for account in scenario["accounts"]}
    if len(names) != len(accounts) or len(accounts) != len(scenario["accounts"]):
        raise ScenarioError(f"{origin}: account ids and names must be unique")

    def account_id(reference, where):
        if reference in accounts:
            return reference
        if reference in names:
            return names[reference]
        raise ScenarioError(f"{origin}: {where} names account '{reference}', which the scenario does not define")

    def region(value, where):
        if value not in scenario["regions"]:
            raise ScenarioError(f"{origin}: {where} uses region {value}, which is not in regions {scenario['regions']}")
        return value

    scenario["operator"] = {**scenario["operator"], "account": account_id(scenario["operator"]["account"], "operator.account")}
    for account in scenario["accounts"]:
        account.setdefault("roles", [])
        account.setdefault("drs", {})
        for region_name, drs in account["drs"].items():
            where = f"accounts[{account['name']}].drs.{region_name}"
            region(region_name, where)
            drs.setdefault("initialized", False)
            drs.setdefault("replication_template", False)
            drs["trusted_accounts"] = [account_id(ref, where + ".trusted_accounts") for ref in drs.get("trusted_accounts", [])]
            for servers in drs.setdefault("source_servers", []):
                if "staging_account" in servers:
                    servers["staging_account"] = account_id(servers["staging_account"], where + ".source_servers")
    group_names = set()
    for index, group in enumerate(scenario["instance_groups"]):
        where = f"instance_groups[{index}] ({group['name']})"
        if group["name"] in group_names:
            raise ScenarioError(f"{origin}: {where}: group names must be unique")
        group_names.add(group["name"])
        for key, value in GROUP_DEFAULTS.items():
            group.setdefault(key, value)
        group["install"] = {**INSTALL_DEFAULTS, **group.get("install", {})}
        group["recovery"] = {**RECOVERY_DEFAULTS, **group.get("recovery", {})}
        group["account"] = account_id(group["account"], where + ".account")
        region(group["region"], where + ".region")
        for field in ("ssm", "replication"):
            _check_mix(group[field], group["count"], f"{origin}: {where}.{field}")
        _check_mix(group["install"]["outcome"], group["count"], f"{origin}: {where}.install.outcome")
        _check_mix(group["recovery"]["launch"], group["count"], f"{origin}: {where}.recovery.launch")
        _check_outcomes(group, f"{origin}: {where}.install.outcome")
        registered = group.get("already_registered")
        if registered:
            registered["account"] = account_id(registered["account"], where + ".already_registered.account")
            registered.setdefault("region", group["region"])
            registered.setdefault("replication_state", "CONTINUOUS")
            if registered["count"] > group["count"]:
                raise ScenarioError(f"{origin}: {where}.already_registered.count is larger than the group")
    scenario["faults"] = scenario.get("faults", {})
    scenario.setdefault("drs", {})
    scenario.setdefault("ssm", {})
    return scenario


def spread(mix, count):
    """The per-instance values of a count mix, in a stable order (a value, or value -> count)."""
    if isinstance(mix, str):
        return [mix] * count
    values = [value for value, how_many in mix.items() for _ in range(how_many)]
    return values


def _check_mix(mix, count, where):
    if isinstance(mix, dict) and sum(mix.values()) != count:
        raise ScenarioError(f"{where}: the counts add up to {sum(mix.values())}, but the group has {count} instances")


def _check_outcomes(group, where):
    # imported here: the SSM model pulls in part of moto, which only a scenario with instances needs
    from lab.models.ssm import INSTALL_OUTCOME_NAMES, outcome_platforms

    mix = group["install"]["outcome"]
    for name in [mix] if isinstance(mix, str) else list(mix):
        if name not in INSTALL_OUTCOME_NAMES:
            raise ScenarioError(f"{where}: unknown install outcome '{name}'; valid outcomes: {', '.join(INSTALL_OUTCOME_NAMES)}")
        if group["platform"] not in outcome_platforms(name):
            raise ScenarioError(f"{where}: install outcome '{name}' cannot happen on {group['platform']} instances")


def _where(error):
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"
