"""The rollout's AWS sessions: what every client of every account shares."""

import botocore.credentials
from botocore.stub import Stubber

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import Sessions


def role_session(sessions, account_id):
    """A session of an assumed role, as ``Sessions.assume`` keeps it, without calling STS."""
    credentials = botocore.credentials.Credentials(f"AKIA{account_id}", "secret", "token")
    sessions._roles[account_id] = sessions._session(credentials=credentials)  # pylint: disable=protected-access


def test_clients_of_one_service_in_different_accounts_share_their_methods_and_each_calls_with_its_own_keys(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    sessions = Sessions(region="us-east-1")
    for account_id in ("222222222222", "555555555555"):
        role_session(sessions, account_id)
    first = sessions.client("222222222222", "ssm", "us-east-1").client
    second = sessions.client("555555555555", "ssm", "us-west-2").client
    other = sessions.client("555555555555", "drs", "us-west-2").client
    assert type(first) is not type(second)
    assert type(first).list_commands is type(second).list_commands
    assert type(first).list_commands.__doc__ is type(second).list_commands.__doc__
    assert not hasattr(other, "list_commands") and hasattr(other, "describe_source_servers")
    # each client still signs with its own account's keys and calls its own operation
    for client, key in ((first, "AKIA222222222222"), (second, "AKIA555555555555")):
        assert client._request_signer._credentials.access_key == key  # pylint: disable=protected-access
        with Stubber(client) as stubber:
            stubber.add_response("list_commands", {"Commands": []}, {"InstanceId": "i-0123456789abcdef0"})
            assert client.list_commands(InstanceId="i-0123456789abcdef0")["Commands"] == []
