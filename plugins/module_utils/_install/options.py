# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The install settings: documents, batches, agent tags, and the checks of every setting before any AWS call."""

import re

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs

SAME_ACCOUNT_DOCUMENT = "AWSDisasterRecovery-InstallDRAgentOnInstance"
CROSS_ACCOUNT_DOCUMENT = "DRSOrchestration-InstallDRAgentCrossAccount"
# Installs of either document are looked for before sending, so that no instance gets a second installer.
INSTALL_DOCUMENTS = (SAME_ACCOUNT_DOCUMENT, CROSS_ACCOUNT_DOCUMENT)
PLUGIN_BY_PLATFORM = {"Linux": "InstallLinuxAgent", "Windows": "InstallWindowsAgent"}
SEND_BATCH_SIZE = 50  # SendCommand takes at most 50 InstanceIds
COMMENT_PREFIX = "drs_orchestration.agent_deployer"
MAX_COMMENT_LENGTH = 100  # SendCommand Comment

# Tags travel as KEY=VALUE,KEY=VALUE into a double-quoted shell (and PowerShell) string and on to
# the installer's --tags: no separators inside keys or values, nothing the shells expand or quote.
# Inner spaces are fine; outer ones would be trimmed by the installer and change the tag.
TAG_TEXT_PATTERN = re.compile(r"^([A-Za-z0-9_.:/+@-]([A-Za-z0-9 _.:/+@-]*[A-Za-z0-9_.:/+@-])?)?$")
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_AGENT_TAGS = 50
TAG_CHARACTERS = "letters, digits, inner spaces and _ . : / + @ -"


# The settings every account-region's installs share, with their defaults: the options of drs_ssm_install
# and of the deploy action.
SETTINGS_SPEC = dict(
    agent_tags=dict(type="dict", default={}),
    max_concurrency=dict(type="str", default="50"),
    max_errors=dict(type="str", default="100%"),
    ssm_online_timeout=dict(type="int", default=120),
    timeout=dict(type="int", default=4200),
    install_timeout=dict(type="int"),
    poll_interval=dict(type="int", default=15),
    registration_timeout=dict(type="int", default=300),
    reinstall=dict(type="bool", default=False),
    max_failure_rate=dict(type="float", default=0.0),
)


def tag_errors(tags, name="agent_tags"):
    """What is wrong with agent tags, one message per tag at fault."""
    if not isinstance(tags, dict):
        return [f"{name} must be a mapping of tag key to value"]
    errors = []
    if len(tags) > MAX_AGENT_TAGS:
        errors.append(f"{name} has {len(tags)} tags; a DRS source server takes at most {MAX_AGENT_TAGS}")
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY_LENGTH or not TAG_TEXT_PATTERN.match(key):
            errors.append(f"{name} key {key!r} must be 1 to {MAX_TAG_KEY_LENGTH} of {TAG_CHARACTERS}")
        elif key.lower().startswith("aws:"):
            errors.append(f"{name} key {key!r} uses the reserved prefix aws:")
        elif not isinstance(value, str):
            errors.append(f"{name} value of {key!r} must be a string (quote it: {key}: \"{value}\")")
        elif len(value) > MAX_TAG_VALUE_LENGTH or not TAG_TEXT_PATTERN.match(value):
            errors.append(f"{name} value {value!r} of {key!r} must be at most {MAX_TAG_VALUE_LENGTH} of {TAG_CHARACTERS}")
    return errors


def format_tags(tags):
    """Agent tags as the install documents' ``Tags`` parameter: ``KEY=VALUE,KEY=VALUE``."""
    return ",".join(f"{key}={value}" for key, value in tags.items())


def setting_errors(settings, name=str):
    """Every problem with the install settings shared by all account-regions, found before any AWS call.

    ``name(option)`` is how an option is called in messages (a module option, or a role variable)."""
    errors = []
    if settings.get("document_name") is not None:
        errors.append(inputs.document_name_error(name("document_name"), settings["document_name"]))
    if settings.get("document_version") is not None:
        errors.append(inputs.document_version_error(name("document_version"), settings["document_version"]))
    errors.append(inputs.max_concurrency_error(name("max_concurrency"), settings["max_concurrency"]))
    errors.append(inputs.max_errors_error(name("max_errors"), settings["max_errors"]))
    for option in ("timeout", "poll_interval", "registration_timeout"):
        errors.append(inputs.seconds_error(name(option), settings[option]))
    errors.append(inputs.seconds_error(name("ssm_online_timeout"), settings["ssm_online_timeout"], minimum=0))
    if settings.get("install_timeout") is not None:
        errors.append(inputs.seconds_error(name("install_timeout"), settings["install_timeout"]))
    errors.append(inputs.rate_error(name("max_failure_rate"), settings["max_failure_rate"]))
    errors.extend(tag_errors(settings.get("agent_tags") or {}, name("agent_tags")))
    return [error for error in errors if error]


def send_batches(new_ids, registered_ids, size=SEND_BATCH_SIZE):
    """SendCommand batches as (instance ids, with tags): tags only for servers that are new to DRS,
    because the installer refuses --tags for a server that is already registered."""
    return [(batch, True) for batch in chunks(list(new_ids), size)] + \
        [(batch, False) for batch in chunks(list(registered_ids), size)]


def chunks(items, size):
    return [items[start:start + size] for start in range(0, len(items), size)]


def comment(run_id=None, wave=None):
    """The SendCommand comment: it names the collection, and the run and wave when there are, so that a later
    run that adopts the command can tell whose it is."""
    parts = [COMMENT_PREFIX]
    if run_id:
        parts.append(f"run {run_id}")
    if wave is not None:
        parts.append(f"wave {wave}")
    return " ".join(parts)[:MAX_COMMENT_LENGTH]


def run_of_comment(text):
    """The run id a comment of ``comment()`` names, or None."""
    match = re.search(r"\brun (\S+)", text or "")
    return match.group(1) if match and (text or "").startswith(COMMENT_PREFIX) else None
