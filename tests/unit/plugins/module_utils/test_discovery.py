from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import (
    NOT_MANAGED,
    arrange_in_waves,
    discover,
    describe_instance,
    select_waves,
    ssm_status_by_instance,
)


def ec2_instance(instance_id, wave=None, name=None, platform=None):
    tags = [{"Key": "Name", "Value": name or instance_id}]
    if wave is not None:
        tags.append({"Key": "dr:wave", "Value": wave})
    raw = {"InstanceId": instance_id, "State": {"Name": "running"}, "Tags": tags}
    if platform:
        raw["Platform"] = platform
    return describe_instance(raw, "222222222222", "us-east-1", "dr:wave", "dr:priority")


def test_waves_are_ordered_as_numbers_not_as_strings():
    instances = [ec2_instance("i-a", "10"), ec2_instance("i-b", "2"), ec2_instance("i-c", "1"), ec2_instance("i-d", "2")]

    result = arrange_in_waves(instances)

    assert [(w["wave"], w["instance_ids"]) for w in result["waves"]] == [(1, ["i-c"]), (2, ["i-b", "i-d"]), (10, ["i-a"])]
    assert [i["instance_id"] for i in result["instances"]] == ["i-c", "i-b", "i-d", "i-a"]


def test_instances_without_a_usable_wave_are_listed_apart_with_the_reason():
    instances = [ec2_instance("i-a", "1"), ec2_instance("i-b"), ec2_instance("i-c", "two"), ec2_instance("i-d", "-4")]

    result = arrange_in_waves(instances)

    assert result["invalid_wave_instances"] == [
        {"instance_id": "i-b", "name": "i-b", "reason": "the wave tag dr:wave is missing"},
        {"instance_id": "i-c", "name": "i-c", "reason": "the wave tag dr:wave='two' is not an integer"},
        {"instance_id": "i-d", "name": "i-d", "reason": "the wave tag dr:wave='-4' is negative"},
    ]
    assert result["counts"] == {"instances": 4, "in_waves": 1, "invalid_wave": 3, "waves": 1}
    assert [i["instance_id"] for i in result["instances"]][-3:] == ["i-b", "i-c", "i-d"]


def test_a_wave_filter_keeps_instances_without_a_usable_wave():
    instances = [ec2_instance("i-a", "1"), ec2_instance("i-b", "2"), ec2_instance("i-c", "x")]

    assert [i["instance_id"] for i in select_waves(instances, [2])] == ["i-b", "i-c"]
    assert select_waves(instances, None) == instances


def test_platform_and_ssm_status_are_reported_and_unmanaged_instances_say_so():
    instances = [ec2_instance("i-a", "1", platform="windows"), ec2_instance("i-b", "1")]
    status = {"i-a": {"managed": True, "ping_status": "ConnectionLost"}}

    result = arrange_in_waves(instances, status)

    assert [i["platform"] for i in result["instances"]] == ["windows", "linux"]
    assert [i["ssm"] for i in result["instances"]] == [status["i-a"], NOT_MANAGED]
    assert result["counts"]["ssm_online"] == 0
    assert result["counts"]["ssm_not_online"] == 1
    assert result["counts"]["ssm_not_managed"] == 1


class FakeSsm:
    """DescribeInstanceInformation over a fixed set of managed instances, recording each request."""

    def __init__(self, managed):
        self.managed = managed
        self.requests = []

    def describe_instance_information(self, aws_retry, Filters, MaxResults, NextToken=None):
        assert aws_retry is True
        self.requests.append(Filters[0]["Values"])
        assert Filters[0]["Key"] == "InstanceIds" and len(Filters[0]["Values"]) <= 50 and MaxResults == 50
        found = [{"InstanceId": i, "PingStatus": "Online"} for i in Filters[0]["Values"] if i in self.managed]
        return {"InstanceInformationList": found}


def test_ssm_status_is_asked_in_chunks_of_fifty_instance_ids():
    ids = [f"i-{n:017x}" for n in range(120)]
    ssm = FakeSsm(set(ids[::2]))

    status = ssm_status_by_instance(ssm, ids)

    assert [len(chunk) for chunk in ssm.requests] == [50, 50, 20]
    assert sorted(sum(ssm.requests, [])) == sorted(ids)
    assert set(status) == set(ids[::2])


class FakeEc2:
    def __init__(self, raw):
        self.raw = raw

    def describe_instances(self, aws_retry, Filters, MaxResults, NextToken=None):
        assert aws_retry is True and MaxResults == 1000 and Filters
        return {"Reservations": [{"Instances": self.raw}]}


def test_ssm_is_read_only_for_the_instances_in_scope_and_the_others_carry_no_ssm_view():
    raw = [{"InstanceId": f"i-{n:017x}", "State": {"Name": "running"},
            "Tags": [{"Key": "dr:wave", "Value": str(1 + n % 3)}]} for n in range(90)]
    ssm = FakeSsm({entry["InstanceId"] for entry in raw})
    options = {"tag_filters": {"dr:enabled": ["true"]}, "wave_tag_key": "dr:wave", "priority_tag_key": "dr:priority",
               "waves": None, "instance_states": ["running"], "include_ssm_status": True,
               "ssm_scope": lambda instance: instance["wave"] == 2}

    result = discover(FakeEc2(raw), ssm, "222222222222", "us-east-1", options)

    in_wave_2 = {entry["InstanceId"] for n, entry in enumerate(raw) if n % 3 == 1}
    assert sorted(sum(ssm.requests, [])) == sorted(in_wave_2)
    assert {i["instance_id"] for i in result["instances"] if "ssm" in i} == in_wave_2
    assert result["counts"]["instances"] == 90 and result["counts"]["ssm_online"] == 30


class FilteringEc2:
    """DescribeInstances over a fixed fleet, applying the instance-id filter as EC2 does (unknown ids match nothing)."""

    def __init__(self, raw):
        self.raw = raw
        self.requests = []

    def describe_instances(self, aws_retry, Filters, MaxResults, NextToken=None):
        wanted = next((entry["Values"] for entry in Filters if entry["Name"] == "instance-id"), None)
        self.requests.append(wanted)
        assert wanted is None or len(wanted) <= 200
        return {"Reservations": [{"Instances": [entry for entry in self.raw
                                                if wanted is None or entry["InstanceId"] in wanted]}]}


def test_given_instance_ids_are_looked_for_200_a_call_and_ids_of_elsewhere_match_nothing():
    raw = [{"InstanceId": f"i-{n:017x}", "State": {"Name": "running"}, "Tags": [{"Key": "dr:wave", "Value": "1"}]}
           for n in range(500)]
    ec2 = FilteringEc2(raw)
    asked = [entry["InstanceId"] for entry in raw[:450]] + ["i-0000000000000ffff"]
    options = {"tag_filters": {"dr:enabled": ["true"]}, "wave_tag_key": "dr:wave", "priority_tag_key": "dr:priority",
               "waves": None, "instance_states": ["running"], "include_ssm_status": False, "instance_ids": asked}

    result = discover(ec2, None, "222222222222", "us-east-1", options)

    assert [len(values) for values in ec2.requests] == [200, 200, 51]
    assert {i["instance_id"] for i in result["instances"]} == set(asked[:450])
