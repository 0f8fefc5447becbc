# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the drs_agent_deploy role: deployment plan, wave outcome and summary."""

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.deployment import (
    assume_failures,
    build_plan,
    discover_targets,
    extension_lines,
    extension_outcome,
    extension_summary,
    extension_targets,
    history_results,
    install_targets,
    outcome_lines,
    plan_lines,
    summarize,
    summary_lines,
    wave_outcome,
)


class FilterModule:
    def filters(self):
        return {
            "drs_assume_failures": assume_failures,
            "drs_deployment_plan": build_plan,
            "drs_discover_targets": discover_targets,
            "drs_install_targets": install_targets,
            "drs_plan_lines": plan_lines,
            "drs_wave_outcome": wave_outcome,
            "drs_outcome_lines": outcome_lines,
            "drs_deployment_summary": summarize,
            "drs_summary_lines": summary_lines,
            "drs_history_results": history_results,
            "drs_extension_targets": extension_targets,
            "drs_extension_outcome": extension_outcome,
            "drs_extension_lines": extension_lines,
            "drs_extension_summary": extension_summary,
        }
