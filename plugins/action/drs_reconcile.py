# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reconcile the DR-tagged instances with the DRS source servers, on the controller (see
plugins/modules/drs_reconcile.py)."""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile.settings import ARGUMENT_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile.settings import ROLE_OUTPUTS
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile.settings import setting_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import unknown_variables
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import Names
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.output import Output

try:
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.reconcile import Reconcile
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, settings = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if not HAS_BOTO3:
            raise AnsibleActionFail("drs_reconcile needs boto3 and botocore on the controller (pip install boto3)")
        name = Names(settings["variable_prefix"])
        errors = []
        if settings["variable_prefix"]:
            errors.extend(unknown_variables(settings["variable_prefix"], (task_vars or {}).keys(), ARGUMENT_SPEC,
                                            ROLE_OUTPUTS))
        errors.extend(setting_errors(settings, name))
        if errors:
            result.update(failed=True, changed=False,
                          msg="The reconcile input is not usable; nothing was changed and no AWS call was made:\n"
                              + "\n".join(f"- {error}" for error in errors))
            return result
        try:
            result.update(Reconcile(settings, name, Output(), self._task.check_mode).run())
        except Exception as error:  # pylint: disable=broad-except
            raise AnsibleActionFail(f"The reconcile stopped unexpectedly: {type(error).__name__}: "
                                    f"{to_text(error)}") from error
        return result
