# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Account names for history items: given, else Organizations, else the caller's own IAM alias, else the id."""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


class AccountNames:
    """Account names, each resolved once per run. Never fatal. ``client_factory(service)`` gives a retrying
    client of the operator's account."""

    def __init__(self, client_factory, given=None):
        self._client = client_factory
        self._names = {key: value for key, value in (given or {}).items() if value}
        self._own_account = None
        self._own_alias = None

    def name(self, account_id):
        if account_id not in self._names:
            self._names[account_id] = self._resolve(account_id)
        return self._names[account_id]

    def names(self, account_ids):
        return {account_id: self.name(account_id) for account_id in account_ids}

    def _resolve(self, account_id):
        try:
            answer = self._client("organizations").describe_account(AccountId=account_id, aws_retry=True)
            if answer.get("Account", {}).get("Name"):
                return answer["Account"]["Name"]
        except (BotoCoreError, ClientError):
            pass  # not in an organization, not its management account, or not allowed: fall through
        try:
            if self._own_account is None:
                self._own_account = self._client("sts").get_caller_identity(aws_retry=True)["Account"]
            if self._own_account == account_id:
                if self._own_alias is None:
                    aliases = self._client("iam").list_account_aliases(aws_retry=True).get("AccountAliases") or []
                    self._own_alias = aliases[0] if aliases else ""
                if self._own_alias:
                    return self._own_alias
        except (BotoCoreError, ClientError):
            pass
        return account_id
