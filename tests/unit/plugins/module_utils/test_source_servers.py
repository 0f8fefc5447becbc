from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import (
    instance_id_of,
    is_stale,
    list_source_servers,
    replication_summary,
    servers_by_instance_id,
)


def server(server_id, instance_id, state="CONTINUOUS", added="2026-11-01T00:00:00Z", staging=None):
    return {
        "sourceServerID": server_id,
        "arn": f"arn:aws:drs:us-east-1:333333333333:source-server/{server_id}",
        "sourceProperties": {"identificationHints": {"awsInstanceID": instance_id} if instance_id else {}},
        "dataReplicationInfo": {"dataReplicationState": state},
        "lifeCycle": {"addedToServiceDateTime": added},
        "stagingArea": {"stagingAccountID": staging} if staging else {"status": "NOT_EXTENDED"},
    }


class FakeDrs:
    """DescribeSourceServers over a fixed list, two servers a page, recording each request's filters."""

    def __init__(self, servers):
        self.servers = servers
        self.requests = []

    def describe_source_servers(self, aws_retry, maxResults, filters=None, nextToken=None):
        assert aws_retry is True and maxResults > 0
        filters = filters or {}
        if nextToken is None:
            self.requests.append(filters)
        matching = [
            s for s in self.servers
            if ("hardwareId" not in filters or instance_id_of(s) == filters["hardwareId"])
            and ("sourceServerIDs" not in filters or s["sourceServerID"] in filters["sourceServerIDs"])
            and ("stagingAccountIDs" not in filters or s["stagingArea"].get("stagingAccountID") in filters["stagingAccountIDs"])
        ]
        start = int(nextToken or 0)
        page = {"items": matching[start:start + 2]}
        if start + 2 < len(matching):
            page["nextToken"] = str(start + 2)
        return page


FLEET = [server(f"s-{n:017d}", f"i-{n:017x}") for n in range(7)]


def test_many_instances_are_matched_from_one_listing_not_one_call_each():
    drs = FakeDrs(FLEET)

    found = list_source_servers(drs, instance_ids=[f"i-{n:017x}" for n in (1, 4, 6)])

    assert [s["sourceServerID"] for s in found] == [f"s-{n:017d}" for n in (1, 4, 6)]
    assert drs.requests == [{}]


def test_a_single_instance_uses_the_hardware_id_filter():
    drs = FakeDrs(FLEET)

    found = list_source_servers(drs, instance_ids=["i-00000000000000003"])

    assert [s["sourceServerID"] for s in found] == ["s-00000000000000003"]
    assert drs.requests == [{"hardwareId": "i-00000000000000003"}]


def test_server_id_filters_go_in_chunks_of_two_hundred_and_every_page_is_read():
    ids = [f"s-{n:017d}" for n in range(450)]
    drs = FakeDrs([server(i, None) for i in ids])

    found = list_source_servers(drs, source_server_ids=ids, staging_account_ids=["555555555555"])

    assert [len(r["sourceServerIDs"]) for r in drs.requests] == [200, 200, 50]
    assert all(r["stagingAccountIDs"] == ["555555555555"] for r in drs.requests)
    assert found == []
    assert len(list_source_servers(FakeDrs([server(i, None) for i in ids]), source_server_ids=ids)) == 450


def test_a_live_server_stands_for_its_instance_before_a_stale_one_then_the_newest():
    stale_new = server("s-00000000000000001", "i-a", "DISCONNECTED", added="2026-11-20T00:00:00Z")
    live_old = server("s-00000000000000002", "i-a", added="2026-10-01T00:00:00Z")
    live_new = server("s-00000000000000003", "i-a", "INITIAL_SYNC", added="2026-11-10T00:00:00Z")
    only_stale = server("s-00000000000000004", "i-b", "DISCONNECTED")
    not_ec2 = server("s-00000000000000005", None)

    chosen = servers_by_instance_id([stale_new, live_old, live_new, only_stale, not_ec2])

    assert chosen == {"i-a": live_new, "i-b": only_stale}
    assert is_stale(only_stale) and not is_stale(live_new)


def test_replication_summary_names_state_error_and_staleness():
    broken = server("s-00000000000000001", "i-a", "STALLED")
    broken["dataReplicationInfo"]["dataReplicationError"] = {"error": "AGENT_NOT_SEEN", "rawError": "no heartbeat"}

    summary = replication_summary(broken)

    assert summary["instance_id"] == "i-a"
    assert (summary["state"], summary["error"], summary["raw_error"], summary["stale"]) == (
        "STALLED", "AGENT_NOT_SEEN", "no heartbeat", False)
    assert summary["added_to_service_date_time"] == "2026-11-01T00:00:00Z"
