# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """The estate's options, shared by the controller-side actions that act on the DR-tagged instances of
    several accounts (drs_rollout, drs_drill, drs_reconcile): the accounts, how to reach them, and the tags."""

    DOCUMENTATION = r"""
options:
  accounts:
    description:
      - The source accounts, where the DR-tagged instances are.
    type: list
    elements: dict
    required: true
    suboptions:
      account_id:
        description: The 12-digit account id (a string).
        type: str
        required: true
      name:
        description: A name for the account in plans, summaries and the history.
        type: str
      role_arn:
        description: The role to assume in the account; without it, the controller's own credentials (their account).
        type: str
      external_id:
        description: The external id of that role. Defaults to O(external_id).
        type: str
      regions:
        description: The regions of its instances.
        type: list
        elements: str
        required: true
      staging_account_id:
        description: The account its agents register in; another account must be listed in O(staging_accounts).
        type: str
      drs_region:
        description: The region its agents replicate into. Defaults to each instance's own region.
        type: str
      target_account_id:
        description:
          - The account that recovers its servers, which are extended into it from the staging account; when it is
            another account than the staging account, it is reached through O(target_accounts).
        type: str
  staging_accounts:
    description: How to reach the staging accounts (C(account_id), C(role_arn), optional C(external_id)).
    type: list
    elements: dict
    default: []
  target_accounts:
    description: How to reach the target accounts (C(account_id), optional C(role_arn) and C(external_id)).
    type: list
    elements: dict
    default: []
  external_id:
    description: The external id of the roles that do not name their own. Never logged.
    type: str
    default: ""
  sts_region:
    description: The region of the STS endpoint used to assume the roles.
    type: str
    default: us-east-1
  profile:
    description: The AWS profile of the controller's own credentials. Defaults to the environment's.
    type: str
  tag_filters:
    description: Tags an instance must carry to be a DR instance (tag key to a value or a list of values).
    type: dict
    default: {"dr:enabled": "true", "dr:recovery-strategy": "drs"}
  wave_tag_key:
    description: The tag that holds an instance's wave number.
    type: str
    default: dr:wave
  priority_tag_key:
    description: The tag that holds an instance's priority (C(critical), C(high), C(medium), C(low) go first).
    type: str
    default: dr:priority
"""
