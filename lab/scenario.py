"""Scenario files: load, check against the schema and cross-references, and expand defaults."""

import functools
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
    errors = sorted(_validator(_schema()).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        lines = [f"{origin}: {_where(error)}: {error.message}" for error in errors[:10]]
        raise ScenarioError("invalid scenario\n" + "\n".join(lines))
    scenario = {**DEFAULTS, **document}
    accounts = {account["id"]: account for account in scenario["accounts"]}
    names = {account["name"]: account["id"] for account in scenario["accounts"]}
    if len(names) != len(accounts) or len(accounts) != len(scenario["accounts"]):
        raise ScenarioError(f"{origin}: account ids and names must be unique")

    def account_id(reference, where):
        return _account_id(scenario, reference, f"{origin}: {where}")

    def region(value, where):
        return _region(scenario, value, f"{origin}: {where}")

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
        where = f"{origin}: instance_groups[{index}] ({group['name']})"
        if group["name"] in group_names:
            raise ScenarioError(f"{where}: group names must be unique")
        group_names.add(group["name"])
        _expand_group(scenario, group, where)
        registered = group.get("already_registered")
        if registered:
            registered["account"] = _account_id(scenario, registered["account"], where + ".already_registered.account")
            registered.setdefault("region", group["region"])
            registered.setdefault("replication_state", "CONTINUOUS")
            if registered["count"] > group["count"]:
                raise ScenarioError(f"{where}.already_registered.count is larger than the group")
    for index, change in enumerate(scenario.setdefault("changes", [])):
        where = f"{origin}: changes[{index}]"
        if "launch" in change:
            _expand_launch(scenario, change["launch"], where + ".launch")
            group_names.add(change["launch"]["name"])
        else:
            selector = change.get("tag") or change.get("untag")
            if selector["group"] not in group_names:
                raise ScenarioError(f"{where} names group '{selector['group']}', which no instance group or earlier "
                                    "launch defines")
    scenario["faults"] = scenario.get("faults", {})
    scenario.setdefault("drs", {})
    scenario.setdefault("ssm", {})
    return scenario


def launch_spec(scenario, spec, where):
    """An instance group to launch while the lab runs (the control API's POST /_lab/instances): checked as
    a scenario's groups are, its defaults filled in; its name defaults to "launched"."""
    spec = {"name": "launched", **spec}
    errors = sorted(_validator(_schema(), "instance_group").iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        raise ScenarioError("; ".join(f"{where}: {_where(error)}: {error.message}" for error in errors[:10]))
    return _expand_launch(scenario, spec, where)


def _expand_launch(scenario, group, where):
    if "already_registered" in group:
        raise ScenarioError(f"{where}: already_registered does not apply to instances launched while the lab runs")
    return _expand_group(scenario, group, where)


def _expand_group(scenario, group, where):
    """Fill in a group's defaults and check its references and count mixes (``where`` names it in errors)."""
    for key, value in GROUP_DEFAULTS.items():
        group.setdefault(key, value)
    group["install"] = {**INSTALL_DEFAULTS, **group.get("install", {})}
    group["recovery"] = {**RECOVERY_DEFAULTS, **group.get("recovery", {})}
    group["account"] = _account_id(scenario, group["account"], where + ".account")
    _region(scenario, group["region"], where + ".region")
    for field in ("ssm", "replication"):
        _check_mix(group[field], group["count"], f"{where}.{field}")
    _check_mix(group["install"]["outcome"], group["count"], f"{where}.install.outcome")
    _check_mix(group["recovery"]["launch"], group["count"], f"{where}.recovery.launch")
    _check_outcomes(group, f"{where}.install.outcome")
    return group


def _account_id(scenario, reference, where):
    for account in scenario["accounts"]:
        if reference in (account["id"], account["name"]):
            return account["id"]
    raise ScenarioError(f"{where} names account '{reference}', which the scenario does not define")


def _region(scenario, value, where):
    if value not in scenario["regions"]:
        raise ScenarioError(f"{where} uses region {value}, which is not in regions {scenario['regions']}")
    return value


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


@functools.lru_cache(maxsize=1)
def _schema():
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _validator(schema, definition=None):
    """A validator of a whole scenario, or of one of the schema's definitions."""
    if definition:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def _where(error):
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"
