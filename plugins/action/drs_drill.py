# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a DRS recovery drill on the controller, in this task's own process (see plugins/modules/drs_drill.py).

Everything waits here, under ansible-playbook; Ctrl-C, SIGTERM or the end of ansible-playbook stop the drill
within seconds (plugin_utils/stop.py), and the recovery instances it launched are then terminated.
"""

import concurrent.futures

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import ClockSettingError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import configured_clock
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.output import Output
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.stop import Stop
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import Names
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import unknown_variables

try:
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import drill
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.rollout import Rollout
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import empty_reason
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

THREADS = 16


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not HAS_BOTO3:
            raise AnsibleActionFail("drs_drill needs boto3 and botocore on the controller (pip install boto3)")
        _validation, given = self.validate_argument_spec(argument_spec=drill.ARGUMENT_SPEC)
        name = Names(given["variable_prefix"])
        settings = drill.rollout_settings(given)
        errors = []
        if given["variable_prefix"]:
            errors.extend(unknown_variables(given["variable_prefix"], (task_vars or {}).keys(), drill.ARGUMENT_SPEC,
                                            drill.ROLE_OUTPUTS))
        errors.extend(drill.setting_errors(settings, name))
        if errors:
            result.update(failed=True, changed=False,
                          msg="The drill input is not usable; nothing was launched and no AWS call was made:\n"
                              + "\n".join(f"- {error}" for error in errors))
            return result
        try:
            clock = configured_clock()
        except ClockSettingError as error:
            raise AnsibleActionFail(str(error)) from None
        with Stop(lambda: None) as stop:
            try:
                result.update(self._drill(settings, name, clock, stop.event))
            except KeyboardInterrupt:
                raise
            except Exception as error:  # pylint: disable=broad-except
                raise AnsibleActionFail(f"The drill stopped unexpectedly: {type(error).__name__}: "
                                        f"{to_text(error)}") from error
        return result

    def _drill(self, settings, name, clock, stop):
        output = Output()
        survey = Rollout(settings, name, clock, output, stop, check_mode=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="drs") as pool:
            plan = survey.survey(pool)
            for entry in plan.unreachable:
                where = entry["account_id"] + (f"/{entry['region']}" if entry.get("region") else "")
                output.display(f"{where} is left out: {entry['reason']}")
            if not plan.waves:
                why = empty_reason(plan, settings, survey.accounts, name) or "no wave was planned"
                return {"failed": True, "changed": False, "msg": f"Nothing to drill: {why}."}
            outcome = drill.Drill(plan, survey.sessions, settings, clock, output.show, stop, pool).run(self._task.check_mode)
        if plan.unreachable:
            accounts = sorted({entry["account_id"] for entry in plan.unreachable})
            outcome["failed"] = True
            left_out = f"Not drilled, could not be reached: {', '.join(accounts)}."
            outcome["msg"] = " ".join(filter(None, [outcome.get("msg"), left_out]))
        return outcome
