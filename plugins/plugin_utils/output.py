# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the controller-side actions print, through Ansible's display: the rollout, the drill and the reconcile
take an object with ``display(text)`` and ``warning(text)``, which the tests replace."""

from ansible.utils.display import Display

display = Display()


class Output:
    @staticmethod
    def display(text):
        display.display(text)

    @staticmethod
    def warning(text):
        display.warning(text)

    def show(self, lines):
        for line in lines:
            self.display(line)
