"""Extension decisions that the lab cannot provoke on demand: a lost create response, a broken
extended server, a quota lower than the capacity limit, and the capacity arithmetic itself."""

import pytest
from botocore.exceptions import ClientError

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import extension
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics

STAGING = "333333333333"
TARGET = "444444444444"


def staging_arn(number):
    return f"arn:aws:drs:us-east-1:{STAGING}:source-server/s-{number:017d}"


def params(**overrides):
    values = {
        "staging_account_id": STAGING, "source_server_arns": None, "tags": {}, "default_tags": True,
        "deployment_id": None, "capacity_limit": 300, "capacity_warning_thresholds": [80, 90], "wait": True,
        "wait_timeout": 60, "poll_interval": 5, "metrics_namespace": None, "region": "us-east-1",
    }
    values.update(overrides)
    return values


def client_error(code, message="refused"):
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateExtendedSourceServer")


class FakeClock:
    def __init__(self):
        self.time = 1000.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time += seconds


class FakeDrs:
    """A target account with ``own`` servers of its own and a staging account with ``staging`` servers.
    ``refuse`` maps a staging ARN to the error its creation raises; ``appear_after`` delays staging
    servers' listing by that many ListExtensibleSourceServers calls."""

    def __init__(self, own=0, staging=0, extended=(), refuse=None, appear_after=None, broken=()):
        self.servers = [{"sourceServerID": f"s-{9000 + n:017d}", "stagingArea": {"status": "NOT_EXTENDED"}}
                        for n in range(own)]
        self.staging = [staging_arn(n) for n in range(staging)]
        self.refuse = dict(refuse or {})
        self.appear_after = dict(appear_after or {})
        self.broken = set(broken)
        self.created = []
        self.extensible_calls = 0
        self.full_listings = 0  # DescribeSourceServers calls without a filter: the whole target listed
        for arn in extended:
            self._extend(arn)

    def _extend(self, arn):
        server_id = f"s-{len(self.servers) + 1:017d}"
        server = {"sourceServerID": server_id, "arn": f"arn:aws:drs:us-east-1:{TARGET}:source-server/{server_id}",
                  "sourceProperties": {"identificationHints": {"hostname": "host-" + arn[-3:]}},
                  "stagingArea": {"status": "EXTENSION_ERROR" if arn in self.broken else "EXTENDED",
                                  "stagingAccountID": STAGING, "stagingSourceServerArn": arn}}
        self.servers.append(server)
        return server

    def _extended_arns(self):
        return {s["stagingArea"].get("stagingSourceServerArn") for s in self.servers}

    def describe_source_servers(self, aws_retry, maxResults, filters=None, nextToken=None):
        filters = filters or {}
        self.full_listings += not filters
        items = [s for s in self.servers
                 if "sourceServerIDs" not in filters or s["sourceServerID"] in filters["sourceServerIDs"]]
        if "stagingAccountIDs" in filters:
            items = [s for s in items if s["stagingArea"].get("stagingAccountID") in filters["stagingAccountIDs"]]
        return {"items": items}

    def list_extensible_source_servers(self, aws_retry, stagingAccountID, maxResults, nextToken=None):
        assert stagingAccountID == STAGING and maxResults <= 300
        self.extensible_calls += 1
        visible = [arn for arn in self.staging if self.appear_after.get(arn, 0) < self.extensible_calls]
        return {"items": [{"arn": arn, "hostname": "host-" + arn[-3:]} for arn in visible
                          if arn not in self._extended_arns()]}

    def create_extended_source_server(self, aws_retry, sourceServerArn, tags=None):
        self.created.append((sourceServerArn, tags))
        error = self.refuse.get(sourceServerArn)
        if error is not None:
            if error == "lost":  # the server was created, but the response never arrived
                self._extend(sourceServerArn)
                raise client_error("ConflictException", "already extended")
            raise error
        return {"sourceServer": self._extend(sourceServerArn)}


def run(drs, check_mode=False, **overrides):
    return extension.Extension(drs, params(**overrides), TARGET, "us-east-1", clock=FakeClock()).run(check_mode)


def test_capacity_is_filled_to_the_limit_and_the_rest_is_left_out_with_warnings_at_each_threshold():
    drs = FakeDrs(own=235, staging=70)

    result = run(drs)

    assert len(result["extended"]) == 65 and len(drs.created) == 65
    assert [entry["staging_source_server_arn"] for entry in result["left_out"]] == [staging_arn(n) for n in range(65, 70)]
    assert result["capacity"] == {"limit": 300, "before": 235, "after": 300, "room_before": 65,
                                  "utilization_percent": 100.0, "thresholds_reached": [80, 90]}
    warnings = result["extension_warnings"]
    assert any("80% warning threshold" in w for w in warnings) and any("90% warning threshold" in w for w in warnings)
    assert any(w.startswith("5 server(s) were not extended") for w in warnings)


def test_only_the_thresholds_reached_warn():
    result = run(FakeDrs(own=200, staging=45))

    assert result["capacity"]["after"] == 245
    assert result["capacity"]["thresholds_reached"] == [80]
    assert len(result["extension_warnings"]) == 1


def test_check_mode_plans_the_same_cut_and_creates_nothing():
    drs = FakeDrs(own=290, staging=20, extended=[staging_arn(0)])

    result = run(drs, check_mode=True)

    assert drs.created == []
    assert result["changed"] is True
    assert len(result["would_extend"]) == 9 and len(result["left_out"]) == 10
    assert [e["staging_source_server_arn"] for e in result["already_extended"]] == [staging_arn(0)]


def test_a_lower_service_quota_stops_creation_and_leaves_the_rest_out():
    drs = FakeDrs(own=0, staging=5, refuse={staging_arn(2): client_error("ServiceQuotaExceededException", "quota")})

    result = run(drs)

    assert [e["staging_source_server_arn"] for e in result["extended"]] == [staging_arn(0), staging_arn(1)]
    assert [e["staging_source_server_arn"] for e in result["left_out"]] == [staging_arn(n) for n in (2, 3, 4)]
    assert all("quota" in e["reason"] for e in result["left_out"])
    assert len(drs.created) == 3 and result["failed_servers"] == []


def test_an_already_extended_error_confirmed_by_the_listing_is_not_a_failure():
    drs = FakeDrs(staging=3, refuse={staging_arn(1): "lost"})

    result = run(drs)

    assert [e["staging_source_server_arn"] for e in result["already_extended"]] == [staging_arn(1)]
    assert result["failed_servers"] == [] and len(result["extended"]) == 2


def test_runs_into_one_target_list_it_once_and_count_each_others_servers_against_the_limit():
    drs = FakeDrs(own=200, staging=120, refuse={staging_arn(5): "lost"})
    listing = extension.TargetListing()

    def extend(numbers):
        wanted = {"source_server_arns": [staging_arn(n) for n in numbers]}
        return extension.Extension(drs, params(**wanted), TARGET, "us-east-1", FakeClock(), listing).run(False)

    first = extend(range(0, 60))
    second = extend(range(60, 120))

    assert drs.full_listings == 1
    # the first run's 59 created servers and the one whose response was lost count in the second run's capacity
    assert first["capacity"]["before"] == 200 and len(first["extended"]) == 59 and len(first["already_extended"]) == 1
    assert second["capacity"]["before"] == 260 and second["capacity"]["after"] == 300
    assert len(second["extended"]) == 40 and len(second["left_out"]) == 20
    assert len(drs.servers) == 300


def test_a_validation_error_skips_that_server_and_the_others_go_on():
    drs = FakeDrs(staging=3, refuse={staging_arn(0): client_error("ValidationException", "bad server")})

    result = run(drs)

    assert result["failed_servers"] == [{"staging_source_server_arn": staging_arn(0), "hostname": "host-000",
                                         "error_code": "ValidationException", "message": "bad server"}]
    assert len(result["extended"]) == 2


def test_resource_not_found_fails_the_server_with_setup_instructions():
    drs = FakeDrs(staging=2, refuse={staging_arn(1): client_error("ResourceNotFoundException", "no such server")})

    result = run(drs)

    assert result["failed_servers"][0]["error_code"] == "ResourceNotFoundException"
    assert "Trusted accounts" in result["failed_servers"][0]["remediation"]


def test_access_denied_on_create_stops_with_the_setup_step_and_keeps_what_was_done():
    drs = FakeDrs(staging=3, refuse={staging_arn(1): client_error("AccessDeniedException", "not authorized")})

    with pytest.raises(extension.ExtensionSetupError) as raised:
        run(drs)

    assert "setup_accounts.yml" in str(raised.value) and "not authorized" in str(raised.value)
    assert len(raised.value.partial["extended"]) == 1
    assert [e["staging_source_server_arn"] for e in raised.value.partial["failed_servers"]] == [staging_arn(1), staging_arn(2)]
    assert len(drs.created) == 2


def test_a_server_that_becomes_extensible_a_little_later_is_waited_for():
    drs = FakeDrs(staging=2, appear_after={staging_arn(1): 2})

    result = run(drs, source_server_arns=[staging_arn(1)])

    assert [e["staging_source_server_arn"] for e in result["extended"]] == [staging_arn(1)]
    assert drs.extensible_calls == 3


def test_a_server_that_never_becomes_extensible_fails_after_the_wait():
    clock = FakeClock()
    drs = FakeDrs(staging=1)
    missing = f"arn:aws:drs:us-east-1:{STAGING}:source-server/s-{77:017d}"

    result = extension.Extension(drs, params(source_server_arns=[missing], wait_timeout=20), TARGET, "us-east-1",
                                 clock=clock).run(False)

    assert result["failed_servers"][0]["error_code"] == "NotExtensible"
    assert clock.time - 1000.0 == pytest.approx(20)
    assert drs.created == []


def test_an_extension_error_after_creation_is_reported_as_failed():
    drs = FakeDrs(staging=2, broken={staging_arn(0)})

    result = run(drs)

    assert [e["staging_source_server_arn"] for e in result["failed_servers"]] == [staging_arn(0)]
    assert result["failed_servers"][0]["error_code"] == "EXTENSION_ERROR"
    assert [e["confirmed"] for e in result["extended"]] == [True]


def test_default_tags_name_the_staging_account_and_deployment_under_the_users_tags():
    drs = FakeDrs(staging=1)

    run(drs, deployment_id="d-1", tags={"Application": "orders", "ExtendedFrom": "manual"})

    assert drs.created[0][1] == {"ExtendedFrom": "manual", "DeploymentId": "d-1", "Application": "orders"}


@pytest.mark.parametrize("overrides, fragment", [
    ({"staging_account_id": "3333"}, "staging_account_id: '3333' is not an account id"),
    ({"source_server_arns": ["s-123"]}, "is not a source server ARN"),
    ({"source_server_arns": [f"arn:aws:drs:us-east-1:{TARGET}:source-server/s-{1:017d}"]}, f"belongs to account {TARGET}"),
    ({"source_server_arns": [f"arn:aws:drs:eu-west-1:{STAGING}:source-server/s-{1:017d}"]}, "is in region eu-west-1"),
    ({"capacity_warning_thresholds": [80, 120]}, "capacity_warning_thresholds: 120"),
    ({"tags": {"aws:owner": "x"}}, "which AWS reserves"),
    ({"tags": {"Count": 3}}, "must be a string"),
    ({"capacity_limit": 0}, "capacity_limit: 0"),
])
def test_bad_options_are_named_with_their_fix(overrides, fragment):
    errors = extension.option_errors(params(**overrides))

    assert any(fragment in error for error in errors), errors


def test_metrics_carry_the_run_per_staging_account_and_in_total():
    data = metrics.extension_metrics(
        {"extended": [1, 2], "already_extended": [3], "failed_servers": [], "duration_seconds": 4.5}, STAGING)

    values = {(d["MetricName"], bool(d["Dimensions"])): d["Value"] for d in data}
    assert values[("ExtendedSourceServers", True)] == values[("ExtendedSourceServers", False)] == 2.0
    assert values[("AlreadyExtendedCount", False)] == 1.0 and values[("ExtensionFailures", False)] == 0.0
    assert values[("ExtensionDuration", True)] == 4.5
