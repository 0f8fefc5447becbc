# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The reconcile's settings: their argument spec, and every check of them before any AWS call.

Accounts, staging and target accounts, the external id, tag filters and the history table follow the deploy's
rules (the same checks, _rollout.settings and module_utils.inputs); a message names the setting as the caller
knows it: the action's option, or the role variable (``variable_prefix``), with the entry and the rule.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import TagInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_key
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ESTATE_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import account_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import role_entry_errors

# The history keeps items for 90 days (its TTL); a longer look finds nothing more.
MAX_HISTORY_DAYS = 90

ARGUMENT_SPEC = dict(
    ESTATE_SPEC,
    session_name=dict(type="str", default="drs-reconcile"),
    history_table=dict(type="str", default="drs-deployment-history"),
    history_region=dict(type="str", default="us-east-1"),
    history_days=dict(type="int", default=30),
    retire=dict(type="bool", default=False),
    retry_failed=dict(type="bool", default=False),
    report_file=dict(type="str", default=""),
    variable_prefix=dict(type="str", default=""),
)
ROLE_OUTPUTS = ("result",)


def setting_errors(settings, name):
    """Every problem with the settings, each naming the setting, the entry and the rule; empty when usable.

    Each account's target account (``target_account_id``, when it is not the staging account) must be listed in
    ``target_accounts``: its extended servers are read, for the ``EXTENSION_ERROR`` drift and so that a server is
    never retired while one of its extended servers has a recovery instance."""
    errors = list(account_errors(settings, name, targets_needed="to read its extended servers,"))
    errors.extend(role_entry_errors(settings["staging_accounts"], name("staging_accounts"), role_required=True))
    errors.extend(role_entry_errors(settings["target_accounts"], name("target_accounts"), role_required=False))
    if settings["external_id"]:
        errors.append(inputs.external_id_error(name("external_id"), settings["external_id"]))
    errors.append(inputs.region_error(name("sts_region"), settings["sts_region"]))
    errors.append(inputs.session_name_error(name("session_name"), settings["session_name"]))
    try:
        check_tag_filters(settings["tag_filters"], name("tag_filters"))
        check_tag_key(name("wave_tag_key"), settings["wave_tag_key"])
        check_tag_key(name("priority_tag_key"), settings["priority_tag_key"])
    except TagInputError as error:
        errors.append(str(error))
    if settings["history_table"]:
        errors.append(inputs.table_name_error(name("history_table"), settings["history_table"]))
        errors.append(inputs.region_error(name("history_region"), settings["history_region"]))
    days = settings["history_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_HISTORY_DAYS:
        errors.append(f"{name('history_days')} {days!r} must be a whole number of days from 1 to {MAX_HISTORY_DAYS} "
                      "(the history keeps its items 90 days)")
    return [error for error in errors if error]
