"""Elastic Disaster Recovery in the lab: source servers, replication over simulated time, extended
servers across accounts, templates, tags, and the checks an agent install meets.

Wire tests run a lab on tests/lab/scenarios/drs.yml; the agent's side (install checks and
registration) is exercised in-process on a world built from a scenario dict.
"""

import re

import pytest
from botocore.exceptions import ClientError
from moto.iam.models import iam_backends
from moto.moto_api._internal.models import moto_api_backend

from lab.errors import AwsError
from lab.scenario import ScenarioError, expand
from lab.world import World
from tests.lab.shapes import output_problems
from tests.lab_fixture import REPO_ROOT, RunningLab

SCENARIO = REPO_ROOT / "tests" / "lab" / "scenarios" / "drs.yml"
EXTERNAL_ID = "lab-demo-external-id"
SOURCE, STAGING, TARGET, UNINITIALIZED, CROWDED = (
    "222222222222", "333333333333", "444444444444", "555555555555", "666666666666")
SERVER_ID = re.compile(r"^s-[0-9a-f]{17}$")
TEMPLATE_ID = re.compile(r"^rct-[0-9a-f]{17}$")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# staging us-east-1: 25 legacy servers, the 2 the target extends, and 2 registered web instances
STAGING_SERVERS = 25 + 2 + 2
PIT_POLICY = [
    {"units": "MINUTE", "interval": 10, "retentionDuration": 60},
    {"units": "HOUR", "interval": 1, "retentionDuration": 24},
    {"units": "DAY", "interval": 1, "retentionDuration": 3},
]


@pytest.fixture(scope="module")
def lab():
    running = RunningLab(SCENARIO)
    yield running
    running.stop()


def drs_client(lab, account_id, region="us-east-1"):
    role = "DRSOrchestrationStagingRole" if account_id == STAGING else "DRSOrchestrationTargetRole"
    return lab.client("drs", region, lab.assume(f"arn:aws:iam::{account_id}:role/{role}", EXTERNAL_ID))


def error_of(excinfo):
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def every_server(drs, **kwargs):
    pages = drs.get_paginator("describe_source_servers").paginate(filters=kwargs.pop("filters", {}), **kwargs)
    return [server for page in pages for server in page["items"]]


def hostname(server):
    return server["sourceProperties"]["identificationHints"]["hostname"]


def replication_state(server):
    return server["dataReplicationInfo"]["dataReplicationState"]


# --- initialization ---------------------------------------------------------------------------------

def test_every_operation_needs_an_initialized_account_until_initialize_service(lab):
    drs = drs_client(lab, UNINITIALIZED)
    calls = {
        "DescribeSourceServers": lambda: drs.describe_source_servers(filters={}),
        "ListStagingAccounts": lambda: drs.list_staging_accounts(),
        "ListExtensibleSourceServers": lambda: drs.list_extensible_source_servers(stagingAccountID=STAGING),
        "DescribeReplicationConfigurationTemplates": lambda: drs.describe_replication_configuration_templates(),
        "DisconnectSourceServer": lambda: drs.disconnect_source_server(sourceServerID="s-0123456789abcdef0"),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()
        assert error_of(refused) == ("UninitializedAccountException", 400), name
        assert "not initialized" in refused.value.response["Error"]["Message"]

    for _ in range(2):  # initializing again changes nothing
        initialized = drs.initialize_service()
        assert initialized["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert output_problems(drs, "InitializeService", initialized) == []
    listing = drs.describe_source_servers(filters={})
    assert listing["items"] == []
    assert output_problems(drs, "DescribeSourceServers", listing) == []
    with pytest.raises(ClientError) as other_region:
        drs_client(lab, UNINITIALIZED, "us-west-2").describe_source_servers(filters={})
    assert error_of(other_region)[0] == "UninitializedAccountException"

    keys = lab.assume(f"arn:aws:iam::{UNINITIALIZED}:role/DRSOrchestrationTargetRole", EXTERNAL_ID)
    role = lab.client("iam", credentials=keys).get_role(RoleName="AWSServiceRoleForElasticDisasterRecovery")["Role"]
    assert role["Path"] == "/aws-service-role/drs.amazonaws.com/"


# --- DescribeSourceServers ------------------------------------------------------------------------------

def test_describe_source_servers_pages_return_every_server_exactly_once(lab):
    drs = drs_client(lab, STAGING)
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = drs.describe_source_servers(filters={}, maxResults=10, **kwargs)
        assert output_problems(drs, "DescribeSourceServers", page) == []
        assert len(page["items"]) <= 10
        seen += [server["sourceServerID"] for server in page["items"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == STAGING_SERVERS
    assert pages == 3
    assert all(SERVER_ID.match(server_id) for server_id in seen)

    with pytest.raises(ClientError) as bad_token:
        drs.describe_source_servers(filters={}, nextToken="not-a-token")
    assert error_of(bad_token) == ("ValidationException", 400)


def test_describe_source_servers_shows_what_the_agent_reported(lab):
    servers = every_server(drs_client(lab, STAGING))
    registered = [server for server in servers if "awsInstanceID" in server["sourceProperties"]["identificationHints"]]
    assert sorted(hostname(server) for server in registered) == ["web-01", "web-02"]
    for server in registered:
        assert server["arn"] == f"arn:aws:drs:us-east-1:{STAGING}:source-server/{server['sourceServerID']}"
        assert server["sourceCloudProperties"]["originAccountID"] == SOURCE
        assert server["sourceCloudProperties"]["originRegion"] == "us-east-1"
        assert server["sourceCloudProperties"]["originAvailabilityZone"].startswith("us-east-1")
        assert replication_state(server) == "CONTINUOUS"
        assert server["stagingArea"]["status"] == "NOT_EXTENDED"
        assert server["replicationDirection"] == "FAILOVER"
        assert server["sourceProperties"]["ramBytes"] > 0 and server["sourceProperties"]["cpus"]
        for moment in server["lifeCycle"].values():
            assert ISO_TIME.match(moment)


def test_describe_source_servers_filters(lab):
    drs = drs_client(lab, STAGING)
    servers = every_server(drs)
    chosen = [server["sourceServerID"] for server in servers[3:6]]
    by_ids = drs.describe_source_servers(filters={"sourceServerIDs": chosen + ["s-00000000000000000"]})
    assert output_problems(drs, "DescribeSourceServers", by_ids) == []
    assert [server["sourceServerID"] for server in by_ids["items"]] == chosen

    web = next(server for server in servers if hostname(server) == "web-01")
    instance_id = web["sourceProperties"]["identificationHints"]["awsInstanceID"]
    by_hardware = drs.describe_source_servers(filters={"hardwareId": instance_id})
    assert [server["sourceServerID"] for server in by_hardware["items"]] == [web["sourceServerID"]]
    assert drs.describe_source_servers(filters={"hardwareId": "i-0000000000000000f"})["items"] == []
    assert drs.describe_source_servers(filters={"stagingAccountIDs": [STAGING]})["items"] == []

    target = drs_client(lab, TARGET)
    from_staging = target.describe_source_servers(filters={"stagingAccountIDs": [STAGING]})
    assert output_problems(target, "DescribeSourceServers", from_staging) == []
    assert sorted(hostname(server) for server in from_staging["items"]) == ["extended-1", "extended-2"]
    assert {server["stagingArea"]["stagingAccountID"] for server in from_staging["items"]} == {STAGING}

    with pytest.raises(ClientError) as too_many:
        drs.describe_source_servers(filters={"sourceServerIDs": [f"s-{index:017x}" for index in range(201)]})
    assert error_of(too_many) == ("ValidationException", 400)


# --- replication over simulated time --------------------------------------------------------------------

def test_a_new_server_moves_from_initiating_through_initial_sync_to_continuous(lab):
    drs = drs_client(lab, STAGING, "us-west-2")

    def fresh():
        servers = [server for server in every_server(drs) if hostname(server) == "fresh-1"]
        assert len(servers) == 1
        return servers[0]

    def replicated(server):
        disks = server["dataReplicationInfo"]["replicatedDisks"]
        return sum(d["replicatedStorageBytes"] for d in disks), sum(d["totalStorageBytes"] for d in disks)

    starting = fresh()
    assert replication_state(starting) == "INITIATING"
    assert starting["dataReplicationInfo"]["dataReplicationInitiation"]["steps"]
    assert "firstByteDateTime" not in starting["lifeCycle"]

    lab.control("clock", {"advance_seconds": 300 + 450})  # into the scenario's 900 s initial sync
    syncing = fresh()
    assert replication_state(syncing) == "INITIAL_SYNC"
    done, total = replicated(syncing)
    assert 0 < done < total
    assert ISO_TIME.match(syncing["lifeCycle"]["firstByteDateTime"])
    assert ISO_TIME.match(syncing["dataReplicationInfo"]["etaDateTime"])

    lab.control("clock", {"advance_seconds": 450})
    continuous = fresh()
    assert replication_state(continuous) == "CONTINUOUS"
    done, total = replicated(continuous)
    assert done == total > 0
    assert output_problems(drs, "DescribeSourceServers", {"items": [starting, syncing, continuous]}) == []


# --- extended source servers --------------------------------------------------------------------------

def test_target_extends_a_staging_server_once(lab):
    target = drs_client(lab, TARGET)
    extensible = target.list_extensible_source_servers(stagingAccountID=STAGING)
    assert output_problems(target, "ListExtensibleSourceServers", extensible) == []
    hostnames = [server["hostname"] for server in extensible["items"]]
    assert len(hostnames) == STAGING_SERVERS - 2
    assert "extended-1" not in hostnames and "legacy-01" in hostnames
    assert all(server["arn"].startswith(f"arn:aws:drs:us-east-1:{STAGING}:source-server/s-") for server in extensible["items"])

    chosen = next(server for server in extensible["items"] if server["hostname"] == "legacy-01")
    created = target.create_extended_source_server(sourceServerArn=chosen["arn"], tags={"Recovery": "target"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert output_problems(target, "CreateExtendedSourceServer", created) == []
    server = created["sourceServer"]
    assert server["arn"].startswith(f"arn:aws:drs:us-east-1:{TARGET}:source-server/s-")
    assert server["stagingArea"] == {"status": "EXTENDED", "stagingAccountID": STAGING, "stagingSourceServerArn": chosen["arn"]}
    assert server["tags"] == {"Recovery": "target"}
    assert hostname(server) == "legacy-01"

    remaining = [s["hostname"] for s in target.list_extensible_source_servers(stagingAccountID=STAGING)["items"]]
    assert "legacy-01" not in remaining and len(remaining) == len(hostnames) - 1
    with pytest.raises(ClientError) as again:
        target.create_extended_source_server(sourceServerArn=chosen["arn"])
    assert error_of(again) == ("ConflictException", 409)

    staging_accounts = target.list_staging_accounts()
    assert output_problems(target, "ListStagingAccounts", staging_accounts) == []
    assert {account["accountID"] for account in staging_accounts["accounts"]} == {STAGING, UNINITIALIZED}


def test_extensible_servers_page_without_repeats(lab):
    target = drs_client(lab, CROWDED)
    pages = target.get_paginator("list_extensible_source_servers").paginate(
        stagingAccountID=STAGING, PaginationConfig={"PageSize": 7})
    arns = [server["arn"] for page in pages for server in page["items"]]
    in_one_page = target.list_extensible_source_servers(stagingAccountID=STAGING, maxResults=300)["items"]
    assert len(arns) == len(set(arns)) > 7
    assert set(arns) == {server["arn"] for server in in_one_page}


def test_an_extended_server_whose_staging_server_is_gone_shows_an_extension_error(lab):
    orphans = [s for s in every_server(drs_client(lab, TARGET)) if hostname(s) == "orphan-1"]
    assert len(orphans) == 1
    assert orphans[0]["stagingArea"]["status"] == "EXTENSION_ERROR"
    assert orphans[0]["stagingArea"]["stagingAccountID"] == UNINITIALIZED


def test_extension_errors(lab):
    target = drs_client(lab, TARGET)
    with pytest.raises(ClientError) as unknown:
        target.create_extended_source_server(sourceServerArn=f"arn:aws:drs:us-east-1:{STAGING}:source-server/s-00000000000000000")
    assert error_of(unknown) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as untrusting_list:
        target.list_extensible_source_servers(stagingAccountID=CROWDED)
    assert error_of(untrusting_list) == ("AccessDeniedException", 403)
    crowded_server = drs_client(lab, CROWDED).describe_source_servers(maxResults=1)["items"][0]
    with pytest.raises(ClientError) as untrusting_create:
        target.create_extended_source_server(sourceServerArn=crowded_server["arn"])
    assert error_of(untrusting_create) == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as too_many:
        target.list_extensible_source_servers(stagingAccountID=STAGING, maxResults=301)
    assert error_of(too_many) == ("ValidationException", 400)


def test_extending_stops_at_the_source_server_quota(lab):
    crowded = drs_client(lab, CROWDED)
    before = len(every_server(crowded))
    assert before == 297
    candidates = crowded.list_extensible_source_servers(stagingAccountID=STAGING, maxResults=4)["items"]
    for server in candidates[:3]:
        crowded.create_extended_source_server(sourceServerArn=server["arn"])
    assert len(every_server(crowded)) == 300
    with pytest.raises(ClientError) as full:
        crowded.create_extended_source_server(sourceServerArn=candidates[3]["arn"])
    assert error_of(full) == ("ServiceQuotaExceededException", 402)
    assert full.value.response["serviceCode"] == "drs"
    assert len(every_server(crowded)) == 300


# --- tags and templates --------------------------------------------------------------------------------

def test_tags_round_trip_on_servers_and_templates(lab):
    drs = drs_client(lab, STAGING)
    server_arn = drs.describe_source_servers(maxResults=1)["items"][0]["arn"]
    template_arn = drs.describe_replication_configuration_templates()["items"][0]["arn"]
    for arn in (server_arn, template_arn):
        tagged = drs.tag_resource(resourceArn=arn, tags={"Owner": "dr-team", "CostCenter": "42"})
        assert output_problems(drs, "TagResource", tagged) == []
        listed = drs.list_tags_for_resource(resourceArn=arn)
        assert output_problems(drs, "ListTagsForResource", listed) == []
        assert {"Owner": "dr-team", "CostCenter": "42"}.items() <= listed["tags"].items()
        untagged = drs.untag_resource(resourceArn=arn, tagKeys=["CostCenter", "Absent"])
        assert output_problems(drs, "UntagResource", untagged) == []
        tags = drs.list_tags_for_resource(resourceArn=arn)["tags"]
        assert tags.get("Owner") == "dr-team" and "CostCenter" not in tags
    described = drs.describe_source_servers(filters={"sourceServerIDs": [server_arn.rsplit("/", 1)[1]]})["items"][0]
    assert described["tags"]["Owner"] == "dr-team"

    with pytest.raises(ClientError) as unknown:
        drs.list_tags_for_resource(resourceArn=f"arn:aws:drs:us-east-1:{STAGING}:source-server/s-00000000000000000")
    assert error_of(unknown) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as reserved:
        drs.tag_resource(resourceArn=server_arn, tags={"aws:owner": "x"})
    assert error_of(reserved) == ("ValidationException", 400)


def test_replication_configuration_templates_are_created_and_described(lab):
    drs = drs_client(lab, STAGING)
    created = drs.create_replication_configuration_template(
        stagingAreaSubnetId="subnet-0123456789abcdef0",
        replicationServersSecurityGroupsIDs=["sg-0123456789abcdef0"],
        ebsEncryption="DEFAULT",
        bandwidthThrottling=0,
        stagingAreaTags={"Purpose": "staging"},
        pitPolicy=PIT_POLICY,
        tags={"Team": "dr"},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert output_problems(drs, "CreateReplicationConfigurationTemplate", created) == []
    template_id = created["replicationConfigurationTemplateID"]
    assert TEMPLATE_ID.match(template_id)
    assert created["arn"] == f"arn:aws:drs:us-east-1:{STAGING}:replication-configuration-template/{template_id}"
    assert created["stagingAreaTags"] == {"Purpose": "staging"} and created["tags"] == {"Team": "dr"}

    by_id = drs.describe_replication_configuration_templates(replicationConfigurationTemplateIDs=[template_id])
    assert output_problems(drs, "DescribeReplicationConfigurationTemplates", by_id) == []
    assert [t["replicationConfigurationTemplateID"] for t in by_id["items"]] == [template_id]
    pages = drs.get_paginator("describe_replication_configuration_templates").paginate(PaginationConfig={"PageSize": 1})
    ids = [t["replicationConfigurationTemplateID"] for page in pages for t in page["items"]]
    assert len(ids) == len(set(ids)) == 2 and template_id in ids

    with pytest.raises(ClientError) as missing_key:
        drs.create_replication_configuration_template(
            stagingAreaSubnetId="subnet-0123456789abcdef0", replicationServersSecurityGroupsIDs=[],
            ebsEncryption="CUSTOM", bandwidthThrottling=0, stagingAreaTags={}, pitPolicy=PIT_POLICY)
    assert error_of(missing_key) == ("ValidationException", 400)


# --- disconnect and delete ----------------------------------------------------------------------------

def test_a_server_is_deleted_only_once_disconnected(lab):
    drs = drs_client(lab, STAGING, "us-west-2")
    retired = next(server for server in every_server(drs) if hostname(server) == "retired-1")
    server_id = retired["sourceServerID"]
    with pytest.raises(ClientError) as connected:
        drs.delete_source_server(sourceServerID=server_id)
    assert error_of(connected) == ("ConflictException", 409)

    disconnected = drs.disconnect_source_server(sourceServerID=server_id)
    assert output_problems(drs, "DisconnectSourceServer", disconnected) == []
    assert replication_state(disconnected) == "DISCONNECTED"
    stale = drs.describe_source_servers(filters={"sourceServerIDs": [server_id]})["items"]
    assert [replication_state(server) for server in stale] == ["DISCONNECTED"]

    deleted = drs.delete_source_server(sourceServerID=server_id)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert output_problems(drs, "DeleteSourceServer", deleted) == []
    assert drs.describe_source_servers(filters={"sourceServerIDs": [server_id]})["items"] == []
    with pytest.raises(ClientError) as gone:
        drs.delete_source_server(sourceServerID=server_id)
    assert error_of(gone) == ("ResourceNotFoundException", 404)


# --- a role the scenario denies some actions ---------------------------------------------------------

def test_a_role_is_refused_the_actions_the_scenario_denies_it_in_each_services_own_words(lab):
    keys = lab.assume(f"arn:aws:iam::{TARGET}:role/DRSOrchestrationTargetRoleLimited", EXTERNAL_ID)
    session = f"arn:aws:sts::{TARGET}:assumed-role/DRSOrchestrationTargetRoleLimited/lab-tests"

    def denial(action):
        return f"User: {session} is not authorized to perform: {action} because no identity-based policy allows the {action} action"

    drs = lab.client("drs", credentials=keys)
    errors_before = lab.stats()["errors"].get("drs:CreateExtendedSourceServer:AccessDeniedException", 0)
    staging_arn = drs.list_extensible_source_servers(stagingAccountID=STAGING)["items"][0]["arn"]
    with pytest.raises(ClientError) as create:
        drs.create_extended_source_server(sourceServerArn=staging_arn)
    assert error_of(create) == ("AccessDeniedException", 403)
    assert create.value.response["Error"]["Message"] == denial("drs:CreateExtendedSourceServer")
    with pytest.raises(ClientError) as delete:
        drs.delete_source_server(sourceServerID="s-0123456789abcdef0")
    assert error_of(delete) == ("AccessDeniedException", 403)
    assert drs.describe_source_servers(filters={})["items"], "an action no pattern matches is answered"
    stats = lab.stats()
    assert stats["errors"]["drs:CreateExtendedSourceServer:AccessDeniedException"] == errors_before + 1
    assert stats["principals"][f"arn:aws:iam::{TARGET}:role/DRSOrchestrationTargetRoleLimited"]["drs:CreateExtendedSourceServer"] >= 1

    ssm = lab.client("ssm", credentials=keys)
    with pytest.raises(ClientError) as send:
        ssm.send_command(InstanceIds=["i-0123456789abcdef0"], DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]})
    assert error_of(send) == ("AccessDeniedException", 400)
    assert send.value.response["Error"]["Message"] == denial("ssm:SendCommand")
    assert ssm.describe_instance_information()["InstanceInformationList"] == []

    with pytest.raises(ClientError) as describe:
        lab.client("ec2", credentials=keys).describe_instances()
    assert error_of(describe) == ("UnauthorizedOperation", 403)
    assert describe.value.response["Error"]["Message"] == (
        "You are not authorized to perform this operation. " + denial("ec2:DescribeInstances"))
    with pytest.raises(ClientError) as get_role:
        lab.client("iam", credentials=keys).get_role(RoleName="DRSOrchestrationTargetRole")
    assert error_of(get_role) == ("AccessDenied", 403)
    assert get_role.value.response["Error"]["Message"] == denial("iam:GetRole")
    assert lab.client("sts", credentials=keys).get_caller_identity()["Arn"] == session

    unrestricted = drs_client(lab, TARGET)
    with pytest.raises(ClientError) as other_role:
        unrestricted.delete_source_server(sourceServerID="s-0123456789abcdef0")
    assert error_of(other_role) == ("ResourceNotFoundException", 404), "the deny holds for the denied role only"


# --- the agent's side, in-process ---------------------------------------------------------------------

def agent_scenario(**drs_settings):
    return expand({
        "name": "agent",
        "seed": 3,
        "regions": ["us-east-1", "us-west-2"],
        "operator": {"account": "source", "user": "operator", "access_key_id": "agent-operator", "secret_access_key": "secret"},
        "drs": drs_settings,
        "accounts": [
            {"id": SOURCE, "name": "source", "drs": {"us-east-1": {"initialized": True}}},
            {"id": STAGING, "name": "staging", "drs": {
                "us-east-1": {"initialized": True, "trusted_accounts": ["source", "target"]},
                "us-west-2": {"initialized": True, "trusted_accounts": ["source"]},
            }},
            {"id": TARGET, "name": "target", "drs": {"us-east-1": {"initialized": True}}},
            {"id": UNINITIALIZED, "name": "elsewhere"},
        ],
        "instance_groups": [{"name": "app", "account": "source", "region": "us-east-1", "count": 2}],
    })


@pytest.fixture
def world_of():
    """Worlds built in this process; moto's backends are process-global, so each starts clean."""
    def build(**drs_settings):
        moto_api_backend.reset()
        return World(agent_scenario(**drs_settings))

    yield build
    moto_api_backend.reset()


def test_install_failures_are_checked_in_order(world_of):
    world = world_of()
    drs = world.drs
    first, second = sorted(world.instances.values(), key=lambda instance: instance.name)
    assert drs.install_failure(first, UNINITIALIZED, "us-east-1", tags_given=False) == "account_not_initialized"
    assert drs.install_failure(first, STAGING, "us-east-1", tags_given=True) is None
    assert drs.install_failure(first, SOURCE, "us-east-1", tags_given=False) is None

    drs.register_agent(first, STAGING, "us-east-1", {"Wave": "1"}, world.elapsed())
    assert drs.install_failure(first, STAGING, "us-west-2", tags_given=False) == "registered_elsewhere"
    assert drs.install_failure(first, STAGING, "us-east-1", tags_given=True) == "already_exists_with_tags"
    assert drs.install_failure(first, STAGING, "us-east-1", tags_given=False) is None
    assert drs.install_failure(second, STAGING, "us-east-1", tags_given=True) is None

    iam_backends[STAGING]["aws"].delete_role(f"DRSCrossAccountAgentRole_{SOURCE}")
    assert drs.install_failure(second, STAGING, "us-east-1", tags_given=False) == "cross_account_role_missing"
    assert drs.install_failure(second, SOURCE, "us-east-1", tags_given=False) is None


def test_trusted_accounts_create_both_cross_account_roles(world_of):
    world_of()
    assert iam_backends[STAGING]["aws"].get_role(f"DRSCrossAccountAgentRole_{SOURCE}")
    assert iam_backends[SOURCE]["aws"].get_role(f"DRSCrossAccountAgentAuthorizedRole_{STAGING}")
    assert iam_backends[TARGET]["aws"].get_role(f"DRSCrossAccountAgentAuthorizedRole_{STAGING}")


def test_a_registered_agent_replicates_and_reinstalls_onto_the_same_server(world_of):
    world = world_of(replication_seconds={"initiating": 60, "initial_sync": 600})
    drs = world.drs
    instance = sorted(world.instances.values(), key=lambda i: i.name)[0]
    server = drs.register_agent(instance, STAGING, "us-east-1", {"Wave": "1"}, world.elapsed())
    described = drs.describe(server)
    assert SERVER_ID.match(described["sourceServerID"])
    assert described["arn"] == f"arn:aws:drs:us-east-1:{STAGING}:source-server/{described['sourceServerID']}"
    assert described["tags"] == {"Wave": "1"}
    hints = described["sourceProperties"]["identificationHints"]
    assert hints["awsInstanceID"] == instance.instance_id and hints["hostname"] == instance.name
    assert described["sourceCloudProperties"]["originAccountID"] == SOURCE
    assert described["stagingArea"] == {"status": "NOT_EXTENDED"}

    states = []
    for step in (0, 61, 600):
        world.clock.advance(step)
        states.append(drs.describe(server)["dataReplicationInfo"]["dataReplicationState"])
    assert states == ["INITIATING", "INITIAL_SYNC", "CONTINUOUS"]

    drs.disconnect_source_server(STAGING, "us-east-1", described["sourceServerID"])
    assert drs.install_failure(instance, STAGING, "us-west-2", tags_given=False) is None
    again = drs.register_agent(instance, STAGING, "us-east-1", {}, world.elapsed())
    assert again.server_id == described["sourceServerID"]
    assert drs.describe(again)["dataReplicationInfo"]["dataReplicationState"] == "INITIATING"


def test_the_scenario_chooses_the_already_extended_error(world_of):
    world = world_of(already_extended_error={"code": "ValidationException", "message": "already extended"})
    drs = world.drs
    instance = next(iter(world.instances.values()))
    staging_server = drs.register_agent(instance, STAGING, "us-east-1", {}, world.elapsed())
    drs.create_extended_source_server(TARGET, "us-east-1", staging_server.arn, {})
    with pytest.raises(AwsError) as again:
        drs.create_extended_source_server(TARGET, "us-east-1", staging_server.arn, {})
    assert (again.value.code, again.value.message, again.value.status) == ("ValidationException", "already extended", 400)


@pytest.mark.parametrize("replication, state, error, extra", [
    ("stalled:UNSTABLE_NETWORK", "STALLED", "UNSTABLE_NETWORK", {}),
    ("stalled", "STALLED", "AGENT_NOT_SEEN", {}),
    ("initiation_failed:CREATE_STAGING_DISKS", "STALLED", "FAILED_TO_CREATE_STAGING_DISKS",
     {"failed_step": "CREATE_STAGING_DISKS"}),
    ("lagging:900", "CONTINUOUS", None, {"lagDuration": "PT900S"}),
    ("healthy", "CONTINUOUS", None, {"lagDuration": "PT0S"}),
])
def test_an_instances_replication_goes_as_the_scenario_or_the_control_api_says(
        world_of, replication, state, error, extra):
    world = world_of(replication_seconds={"initiating": 60, "initial_sync": 600})
    drs = world.drs
    instance = sorted(world.instances.values(), key=lambda i: i.name)[0]
    server = drs.register_agent(instance, STAGING, "us-east-1", {}, world.elapsed())
    drs.set_replication([instance.instance_id], replication)
    world.clock.advance(700)
    described = drs.describe(server)
    info = described["dataReplicationInfo"]
    assert info["dataReplicationState"] == state
    assert info.get("dataReplicationError", {}).get("error") == error
    if "lagDuration" in extra:
        assert info["lagDuration"] == extra["lagDuration"]
        backlog = sum(disk["backloggedStorageBytes"] for disk in info["replicatedDisks"])
        assert (backlog > 0) == (extra["lagDuration"] != "PT0S")
    if "failed_step" in extra:
        steps = {step["name"]: step["status"] for step in info["dataReplicationInitiation"]["steps"]}
        assert steps[extra["failed_step"]] == "FAILED" and steps["CREATE_SECURITY_GROUP"] == "SUCCEEDED"
        assert steps["START_DATA_TRANSFER"] == "NOT_STARTED"
    # back to healthy, the server goes on as its timeline says
    drs.set_replication([instance.instance_id], "healthy")
    assert drs.describe(server)["dataReplicationInfo"]["dataReplicationState"] == "CONTINUOUS"


@pytest.mark.parametrize("replication, message", [
    ("sleepy", "the mode must be one of healthy, stalled, lagging, initiation_failed"),
    ("stalled:TOO_TIRED", "TOO_TIRED is not a DRS replication error"),
    ("lagging:soon", "give the lag in whole seconds"),
    ("initiation_failed:WAIT", "name the step that fails"),
])
def test_a_replication_behaviour_that_does_not_exist_is_refused_with_the_rule(world_of, replication, message):
    world = world_of()
    with pytest.raises(ScenarioError, match=message):
        world.drs.set_replication(list(world.instances), replication)


def test_stalled_lagging_and_failed_servers_answer_in_drs_shapes(lab):
    """Over the wire: the replication behaviours a scenario can set read back as botocore's output shapes say."""
    staging = drs_client(lab, STAGING)
    servers = every_server(staging)
    registered = [server for server in servers
                  if server["sourceProperties"]["identificationHints"].get("awsInstanceID")]
    assert registered
    for behaviour in ("stalled:SNAPSHOTS_FAILURE", "initiation_failed:BOOT_REPLICATION_SERVER", "lagging:120"):
        ids = [server["sourceProperties"]["identificationHints"]["awsInstanceID"] for server in registered]
        lab.control("replication", {"instance_ids": ids, "replication": behaviour})
        answer = staging.describe_source_servers(filters={})
        assert output_problems(staging, "DescribeSourceServers", answer) == []
    lab.control("replication", {"instance_ids": ids, "replication": "healthy"})
