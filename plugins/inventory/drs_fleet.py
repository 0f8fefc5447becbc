# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
name: drs_fleet
version_added: 0.2.0
short_description: The EC2 instances tagged for disaster recovery in several accounts and regions
description:
  - Assumes a role in every listed account at once, and lists the EC2 instances tagged for disaster recovery in each
    of the account's regions, with the same discovery as the C(drs_agent_deploy) role
    (M(drs_orchestration.agent_deployer.drs_rollout)), with the same tag filters, wave and priority tags and rules.
  - Hosts are named by instance id. Groups are C(wave_<n>), C(account_<id>), C(region_<name>) (dashes made
    underscores) and C(priority_<value>). An instance whose wave tag is missing or not a whole number is in no wave
    group, and a warning names it.
  - An account whose role cannot be assumed, or whose instances cannot be listed, fails the inventory source with
    the account and the reason, so that an inventory never silently lacks an account. The external id is never shown.
  - "Credentials of the operator (who assumes the roles): the O(profile) option when set; otherwise the environment
    keys E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY) and E(AWS_SESSION_TOKEN) (as AWX injects them), even when
    E(AWS_PROFILE) is also set; otherwise the profile E(AWS_PROFILE). E(AWS_ENDPOINT_URL) is honoured by botocore."
  - The cache (O(cache)) holds the hosts found, never credentials nor the external id.
  - Inventory files must end in C(drs_fleet.yml) or C(drs_fleet.yaml).
author:
  - DRS orchestration contributors (@drs-orchestration)
requirements:
  - boto3
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: ["drs_orchestration.agent_deployer.drs_fleet"]
  accounts:
    description: The accounts to list, each reached through its own role.
    type: list
    elements: dict
    required: true
    suboptions:
      account_id:
        description: The account id (12 digits, quoted).
        type: str
        required: true
      role_arn:
        description: The role to assume in the account.
        type: str
        required: true
      name:
        description: A name for the account, shown in messages.
        type: str
      regions:
        description: The regions to list in this account. Defaults to O(regions).
        type: list
        elements: str
      external_id:
        description: The external id of this account's role. Defaults to O(external_id).
        type: str
  external_id:
    description:
      - The external id the roles' trust policies require, for the accounts that do not name their own.
      - Never printed. Prefer the environment variable to writing it in the inventory file.
    type: str
    env:
      - name: DRS_EXTERNAL_ID
  regions:
    description: The regions of the accounts that do not name their own.
    type: list
    elements: str
    default: ["us-east-1"]
  tag_filters:
    description:
      - The tags an instance must carry, as a mapping of tag key to a value or a list of values (as for
        M(drs_orchestration.agent_deployer.drs_discover)).
    type: dict
    default: {"dr:enabled": "true", "dr:recovery-strategy": "drs"}
  waves:
    description:
      - Only the instances of these waves; every wave when not set or empty. An instance whose wave tag is missing
        or not a whole number is listed all the same, in no wave group, with its warning.
      - "An inventory per wave keeps a sliced job of one wave from loading the whole fleet: AWX deals a job's slices
        from its inventory's hosts before any limit applies. The controller configuration gives each wave's
        inventory source E(DRS_FLEET_WAVES) (such as C(3), or C(1,2) for two waves) through its source variables."
    type: list
    elements: int
    env:
      - name: DRS_FLEET_WAVES
  wave_tag_key:
    description: The tag that holds an instance's wave number (a whole number, 0 or more).
    type: str
    default: "dr:wave"
  priority_tag_key:
    description: The tag that holds an instance's priority within its wave.
    type: str
    default: "dr:priority"
  sts_region:
    description: The region of the STS endpoint used to assume the roles.
    type: str
    default: us-east-1
  session_name:
    description: The role session name, seen in the accounts' CloudTrail.
    type: str
    default: drs-fleet-inventory
  profile:
    description:
      - The AWS profile of the operator. When set it wins over environment keys; when not set, environment keys win
        over E(AWS_PROFILE).
    type: str
"""

EXAMPLES = r"""
# inventories/production.drs_fleet.yml; the external id comes from DRS_EXTERNAL_ID
plugin: drs_orchestration.agent_deployer.drs_fleet
regions: [us-east-1, us-west-2]
accounts:
  - account_id: "222222222222"
    name: retail
    role_arn: arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole
  - account_id: "555555555555"
    name: analytics
    role_arn: arn:aws:iam::555555555555:role/DRSOrchestrationSourceRole
    regions: [eu-west-1]
compose:
  ansible_host: drs_private_ip_address
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/drs_fleet
"""

import concurrent.futures

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # reported by parse

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import INSTANCE_STATES_DEPLOYED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import discover
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import TagInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_key
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import parse_wave_filter

try:
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import MAX_THREADS
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import Sessions
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

FILE_SUFFIXES = ("drs_fleet.yml", "drs_fleet.yaml")


def group_name(prefix, value):
    """``prefix_value`` with the characters Ansible does not take in group names made underscores."""
    text = "".join(char if char.isalnum() or char == "_" else "_" for char in str(value))
    return f"{prefix}_{text}"


def host_vars(instance):
    """The variables of a discovered instance's host."""
    return {
        "instance_id": instance["instance_id"],
        "drs_account_id": instance["account_id"],
        "drs_region": instance["region"],
        "drs_wave": instance["wave"],
        "drs_priority": instance["priority"],
        "drs_platform": instance["platform"],
        "drs_name": instance["name"],
        "drs_private_ip_address": instance["private_ip_address"],
        "drs_tags": instance["tags"],
    }


def host_groups(instance):
    """The groups of a discovered instance: its wave (when usable), account, region and priority (when tagged)."""
    groups = []
    if instance["wave"] is not None:
        groups.append(group_name("wave", instance["wave"]))
    groups.append(group_name("account", instance["account_id"]))
    groups.append(group_name("region", instance["region"]))
    if instance["priority"]:
        groups.append(group_name("priority", instance["priority"]))
    return groups


def check_accounts(accounts, regions, external_id):
    """The accounts as the discovery needs them, or AnsibleParserError naming the entry and the rule."""
    if not isinstance(accounts, list) or not accounts:
        raise AnsibleParserError("accounts: give at least one account, with account_id and role_arn")
    checked = []
    for index, entry in enumerate(accounts):
        name = f"accounts[{index}]"
        if not isinstance(entry, dict):
            raise AnsibleParserError(f"{name} must be a mapping with account_id and role_arn")
        account_id = entry.get("account_id")
        entry_external_id = entry.get("external_id") or external_id
        entry_regions = entry.get("regions") or regions
        error = inputs.first(
            inputs.account_id_error(f"{name}.account_id", account_id),
            inputs.role_arn_error(f"{name}.role_arn", entry.get("role_arn"), account_id),
            entry_external_id and inputs.external_id_error(f"{name} external id", entry_external_id),
            *[inputs.region_error(f"{name}.regions[{i}]", region) for i, region in enumerate(entry_regions)],
        )
        if error:
            raise AnsibleParserError(error)
        checked.append({"account_id": account_id, "role_arn": entry["role_arn"], "name": entry.get("name"),
                        "regions": list(entry_regions), "external_id": entry_external_id})
    return checked


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "drs_orchestration.agent_deployer.drs_fleet"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(FILE_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        # one file may list several waves' inventories (DRS_FLEET_WAVES): each keeps its own hosts in the cache
        waves = self._waves()
        cache_key = self.get_cache_key(path) + "".join(f"_wave{wave}" for wave in waves or ())
        use_cache = self.get_option("cache") and cache
        instances = None
        if use_cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                pass
        if instances is None:
            instances = self._discover(waves)
            if self.get_option("cache"):
                self._cache[cache_key] = instances
        self._populate(instances)

    def _waves(self):
        try:
            return parse_wave_filter(self.get_option("waves") or None)
        except TagInputError as problem:
            raise AnsibleParserError(f"{problem} (the option, or DRS_FLEET_WAVES as comma-separated numbers)") from None

    def _settings(self, waves):
        """Checked options, before any AWS call."""
        regions = self.get_option("regions")
        error = inputs.first(
            *[inputs.region_error(f"regions[{i}]", region) for i, region in enumerate(regions)],
            inputs.region_error("sts_region", self.get_option("sts_region")),
            inputs.session_name_error("session_name", self.get_option("session_name")),
        )
        if error:
            raise AnsibleParserError(error)
        try:
            options = {"tag_filters": check_tag_filters(self.get_option("tag_filters")),
                       "wave_tag_key": check_tag_key("wave_tag_key", self.get_option("wave_tag_key")),
                       "priority_tag_key": check_tag_key("priority_tag_key", self.get_option("priority_tag_key")),
                       "waves": waves,
                       "instance_states": INSTANCE_STATES_DEPLOYED, "include_ssm_status": False}
        except TagInputError as problem:
            raise AnsibleParserError(str(problem)) from None
        accounts = check_accounts(self.get_option("accounts"), regions, self.get_option("external_id"))
        return accounts, options

    def _discover(self, waves):
        """Every account-region's instances of ``waves`` (None: all), as plain data (what the cache holds)."""
        if not HAS_BOTO3:
            raise AnsibleParserError("the drs_fleet inventory needs boto3 and botocore")
        accounts, options = self._settings(waves)
        secrets = [account["external_id"] for account in accounts if account["external_id"]]
        sessions = Sessions(profile=self.get_option("profile"), region=self.get_option("sts_region"))
        failed = sessions.assume(accounts, self.get_option("session_name"), self.get_option("sts_region"))
        problems = [f"account {_label(account)}: {failed[account['account_id']]}"
                    for account in accounts if account["account_id"] in failed]
        if problems:
            raise AnsibleParserError(_redact("; ".join(problems), secrets))

        def look(place):
            account_id, region = place
            return discover(sessions.client(account_id, "ec2", region, keep=False), None, account_id, region, options)

        places = {(account["account_id"], region): account for account in accounts for region in account["regions"]}
        instances = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(places))) as pool:
            futures = [(place, pool.submit(look, place)) for place in places]
            for place, future in futures:
                try:
                    instances.extend(future.result()["instances"])
                except (BotoCoreError, ClientError) as error:
                    problems.append(f"account {_label(places[place])} in {place[1]}: could not list the instances: "
                                    f"{error}")
        if problems:
            raise AnsibleParserError(_redact("; ".join(problems), secrets))
        return instances

    def _populate(self, instances):
        strict = self.get_option("strict")
        for instance in instances:
            host = instance["instance_id"]
            if instance["wave"] is None:
                self.display.warning(f"{host} ({instance['account_id']}/{instance['region']}) is in no wave: "
                                     f"{instance['wave_error']}")
            self.inventory.add_host(host)
            for key, value in host_vars(instance).items():
                self.inventory.set_variable(host, key, value)
            for group in host_groups(instance):
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            variables = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)


def _label(account):
    return f"{account['account_id']} ({account['name']})" if account.get("name") else account["account_id"]


def _redact(text, secrets):
    for secret in secrets:
        text = text.replace(secret, "********")
    return text
