# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWX / Automation Platform objects of the collection, and the deploy survey's accounts (see
plugin_utils/controller.py)."""

from ansible.errors import AnsibleFilterError

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.controller import definitions
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.controller import deploy_scope


def drs_controller_definitions(settings):
    try:
        return definitions(settings)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


def drs_deploy_scope(accounts, account_ids=None, regions=None, pattern=""):
    try:
        return deploy_scope(accounts, account_ids or [], regions or [], pattern or "")
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"drs_controller_definitions": drs_controller_definitions, "drs_deploy_scope": drs_deploy_scope}
