"""The rollout's AWS sessions: what every client of every account shares."""

import gc
import os
import tracemalloc

import botocore.credentials
import botocore.session
import pytest
from botocore.handlers import BUILTIN_HANDLERS
from botocore.stub import Stubber

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import SERVICES
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


def held(step):
    """What ``step`` leaves allocated (bytes traced once it returned and garbage was collected), and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, result
    finally:
        tracemalloc.stop()


def test_the_controller_holds_of_ec2_only_describe_instances_and_reads_its_answers_whole(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    Sessions(region="us-east-1").client(None, "sts", "us-east-1")  # botocore's modules imported before measuring
    size, sessions = held(lambda: Sessions(region="us-east-1"))
    # botocore's whole EC2 model, which the sessions read DescribeInstances answers with, weighs about 15 MB
    assert size < 2e6
    ec2 = sessions.client(None, "ec2", "eu-west-1", keep=False).client
    assert hasattr(ec2, "describe_instances") and not hasattr(ec2, "run_instances")
    instance = {"InstanceId": "i-0123456789abcdef0", "State": {"Code": 16, "Name": "running"}, "Platform": "windows",
                "InstanceType": "m5.large", "PrivateIpAddress": "10.0.0.5", "Tags": [{"Key": "dr:wave", "Value": "2"}]}
    with Stubber(ec2) as stubber:
        stubber.add_response("describe_instances", {"Reservations": [{"Instances": [instance]}]},
                             {"Filters": [{"Name": "tag:dr:enabled", "Values": ["true"]}], "MaxResults": 1000})
        answer = ec2.describe_instances(Filters=[{"Name": "tag:dr:enabled", "Values": ["true"]}], MaxResults=1000)
    assert answer["Reservations"][0]["Instances"] == [instance]


def test_each_further_account_adds_little_to_the_sessions_whatever_their_number(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    sessions = Sessions(region="us-east-1")
    sessions.client(None, "sts", "us-east-1")
    accounts = [f"{number:012d}" for number in range(100)]
    size = held(lambda: [role_session(sessions, account_id) for account_id in accounts])[0]
    # a botocore session of its own, with botocore's handlers registered anew, holds about 150 KB
    assert size < 100 * 60e3
    clients = [sessions.client(account_id, "drs", "us-east-1").client for account_id in accounts[:2]]
    assert [client._request_signer._credentials.access_key for client in clients] == [  # pylint: disable=protected-access
        f"AKIA{account_id}" for account_id in accounts[:2]]


SERVICES_SEEN_FROM = ("us-east-1", "eu-west-1", "ap-southeast-7", "cn-north-1", "us-gov-west-1", "us-iso-east-1",
                      "aws-global")


def test_each_service_is_called_where_and_as_botocore_calls_it_with_only_the_endpoints_of_the_services_kept(
        monkeypatch, tmp_path):
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    sessions = Sessions(region="us-east-1")
    default = botocore.session.get_session()

    def called(client):
        signer = client._request_signer  # pylint: disable=protected-access
        return (client.meta.endpoint_url, client.meta.region_name, client.meta.partition,
                signer._region_name, signer._signing_name)  # pylint: disable=protected-access

    for service in SERVICES:
        for region in SERVICES_SEEN_FROM:
            assert called(sessions.client(None, service, region, keep=False).client) == called(
                default.create_client(service, region_name=region)), (service, region)
    # botocore's global services are where a loss of endpoints shows: IAM, Organizations and STS sign for us-east-1
    assert called(sessions.client(None, "organizations", "eu-west-1").client)[3] == "us-east-1"
    with pytest.raises(ValueError, match="no s3 client"):
        sessions.client(None, "s3", "us-east-1")


def test_each_service_s_operations_get_every_handler_botocore_gives_them_and_no_client_holds_other_services(
        monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    sessions = Sessions(region="us-east-1")
    default = botocore.session.get_session()

    def handlers(client, event_name):
        found = client.meta.events._emitter._handlers.prefix_search(event_name)  # pylint: disable=protected-access
        return [getattr(handler, "__qualname__", repr(handler)) for handler in found
                if not getattr(handler, "__qualname__", "").startswith("Sessions.")]

    kinds = {event_name.split(".")[0] for event_name, *_rest in BUILTIN_HANDLERS}
    for service in SERVICES:
        ours = sessions.client(None, service, "us-east-1", keep=False).client
        theirs = default.create_client(service, region_name="us-east-1")
        for operation in ours.meta.service_model.operation_names:
            for kind in kinds:
                event_name = f"{kind}.{service}.{operation}"
                assert handlers(ours, event_name) == handlers(theirs, event_name), event_name
    assert handlers(ours, "before-parameter-build.s3.PutObject") != handlers(theirs, "before-parameter-build.s3.PutObject")
