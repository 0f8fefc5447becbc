# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The wave number of an instance, read from its tags the way the deployment reads it."""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_WAVE_TAG_KEY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import parse_wave


def drs_wave(tags, wave_tag_key=DEFAULT_WAVE_TAG_KEY):
    """The wave number (an integer), or None when the tag is missing, not a whole number or negative."""
    return parse_wave(tags or {}, wave_tag_key)[0]


class FilterModule:
    def filters(self):
        return {"drs_wave": drs_wave}
