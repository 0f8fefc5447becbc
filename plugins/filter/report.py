# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the drs_report role: time range, report data, colour bands and exports."""

from ansible.errors import AnsibleFilterError

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.report import (
    deployments_export,
    drills_csv,
    failures_csv,
    flatten_drills,
    flatten_failures,
    flatten_unhealthy,
    flatten_unprotected,
    percent,
    replication_csv,
    report_data,
    success_band,
    time_range,
    unprotected_csv,
)


def _time_range(since=None, until=None, now=None, window_hours=24):
    try:
        return time_range(since, until, now, window_hours)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


def _report_data(deployments, filters=None, generated_at=None, drills=None):
    # An instance status outcomes does not know means the history holds items this collection cannot count:
    # the report stops rather than count them as something else.
    try:
        return report_data(deployments, filters, generated_at, drills)
    except outcomes.UnknownStatus as error:
        raise AnsibleFilterError(f"the deployment history holds an unknown instance status: {error}") from None


class FilterModule:
    def filters(self):
        return {
            "drs_report_time_range": _time_range,
            "drs_report_data": _report_data,
            "drs_report_failures": flatten_failures,
            "drs_report_failures_csv": failures_csv,
            "drs_report_unprotected": flatten_unprotected,
            "drs_report_unprotected_csv": unprotected_csv,
            "drs_report_unhealthy_replication": flatten_unhealthy,
            "drs_report_replication_csv": replication_csv,
            "drs_report_drills": flatten_drills,
            "drs_report_drills_csv": drills_csv,
            "drs_report_deployments_export": deployments_export,
            "drs_report_percent": percent,
            "drs_success_band": success_band,
        }
