# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a DRS agent rollout on the controller, in this task's own process (see plugins/modules/drs_rollout.py).

Everything waits here, under ansible-playbook: nothing runs in the background, and nothing of the rollout
outlives the task. Ctrl-C (SIGINT) and SIGTERM, which ansible-playbook passes to the process running the task,
stop the rollout within seconds; so does the end of ansible-playbook itself (killed), which this process
notices by its parent changing (plugin_utils/stop.py); the installs still running are then named on
ansible-playbook's output and in the run's record.
"""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import ClockSettingError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import configured_clock
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.history import job_deployment_id
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.output import Output
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.stop import Stop
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import host_places
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ARGUMENT_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import Names
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import setting_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import unknown_variables

try:
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.rollout import Rollout
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
            raise AnsibleActionFail("drs_rollout needs boto3 and botocore on the controller (pip install boto3)")
        name = Names(settings["variable_prefix"])
        errors = []
        if settings["variable_prefix"]:
            errors.extend(unknown_variables(settings["variable_prefix"], (task_vars or {}).keys()))
        errors.extend(setting_errors(settings, name))
        if errors:
            result.update(failed=True, changed=False,
                          msg="The deployment input is not usable; nothing was sent and no AWS call was made:\n"
                              + "\n".join(f"- {error}" for error in errors))
            return result
        settings["deployment_id"] = settings["deployment_id"] or job_deployment_id(task_vars or {}) or ""
        if settings["limit_to_instance_ids"] and task_vars and "hostvars" in task_vars:
            settings["instance_places"] = host_places(task_vars["hostvars"], task_vars.get("ansible_play_hosts_all") or [])
        try:
            clock = configured_clock()
        except ClockSettingError as error:
            raise AnsibleActionFail(str(error)) from None
        holder = []
        with Stop(lambda: holder[0] if holder else None) as stop:
            rollout = Rollout(settings, name, clock, Output(), stop.event, self._task.check_mode)
            holder.append(rollout)
            try:
                result.update(rollout.run())
            except KeyboardInterrupt:
                raise
            except Exception as error:  # pylint: disable=broad-except
                raise AnsibleActionFail(f"The rollout stopped unexpectedly: {type(error).__name__}: "
                                        f"{to_text(error)}") from error
        return result
