# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWX / Automation Platform objects of the collection (see plugin_utils/controller.py)."""

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.controller import definitions


def drs_controller_definitions(settings):
    return definitions(settings)


class FilterModule:
    def filters(self):
        return {"drs_controller_definitions": drs_controller_definitions}
