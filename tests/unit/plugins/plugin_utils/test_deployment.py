from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.deployment import (
    build_plan,
    extension_outcome,
    extension_targets,
    failure_rate,
    history_results,
    summarize,
    wave_outcome,
)

RETAIL = {"account_id": "222222222222", "regions": ["us-east-1", "us-west-2"], "staging_account_id": "333333333333"}
HR = {"account_id": "777777777777", "regions": ["us-east-1"]}


def discovered(account, region, *instances, invalid=()):
    """One drs_discover result as registered over ``accounts | subelements('regions')``."""
    return {
        "item": [account, region],
        "instances": [
            {"instance_id": instance_id, "wave": wave, "priority": priority, "name": instance_id, "ssm": {"ping_status": "Online"}}
            for instance_id, wave, priority in instances
        ],
        "invalid_wave_instances": list(invalid),
    }


def test_waves_are_planned_in_numeric_order_with_one_target_per_account_region():
    plan = build_plan([
        discovered(RETAIL, "us-east-1", ("i-a", 10, "low"), ("i-b", 2, "high")),
        discovered(RETAIL, "us-west-2", ("i-c", 2, "low")),
        discovered(HR, "us-east-1", ("i-d", 1, "critical")),
    ], [RETAIL, HR], progress_dir="/progress")

    assert [wave["wave"] for wave in plan["waves"]] == [1, 2, 10]
    wave_two = plan["waves"][1]
    assert [target["name"] for target in wave_two["targets"]] == ["222222222222/us-east-1", "222222222222/us-west-2"]
    assert wave_two["instance_count"] == 2
    target = wave_two["targets"][0]
    assert target["cross_account"] and target["staging_account_id"] == "333333333333"
    assert target["progress_file"] == "/progress/wave-2-222222222222-us-east-1.json"
    hr_target = plan["waves"][0]["targets"][0]
    assert not hr_target["cross_account"] and hr_target["staging_account_id"] == "777777777777"
    assert plan["pattern"] == "multi-account" and plan["instance_count"] == 4


def test_instances_go_out_by_priority_inside_a_target():
    plan = build_plan([
        discovered(HR, "us-east-1", ("i-low", 1, "low"), ("i-none", 1, None), ("i-critical", 1, "Critical"), ("i-high", 1, "high")),
    ], [HR])
    assert plan["waves"][0]["targets"][0]["instance_ids"] == ["i-critical", "i-high", "i-low", "i-none"]


def test_the_inventory_limit_and_the_wave_filter_restrict_the_targets():
    discoveries = [discovered(HR, "us-east-1", ("i-1", 1, "high"), ("i-2", 2, "high"), ("i-3", 3, "high"))]

    limited = build_plan(discoveries, [HR], limit_instance_ids=["i-2", "i-3"])
    assert [wave["wave"] for wave in limited["waves"]] == [2, 3]
    assert limited["outside_limit"] == ["i-1"]

    filtered = build_plan(discoveries, [HR], waves=["3"])
    assert [wave["wave"] for wave in filtered["waves"]] == [3]


def test_a_failed_discovery_makes_its_account_region_unreachable_and_invalid_waves_are_kept():
    failed = {"item": [RETAIL, "us-west-2"], "failed": True, "msg": "AccessDenied"}
    invalid = {"instance_id": "i-x", "reason": "wave tag 'two' is not a whole number"}
    plan = build_plan([discovered(RETAIL, "us-east-1", ("i-1", 1, "high"), invalid=[invalid]), failed], [RETAIL])

    assert plan["unreachable"] == [{"account_id": "222222222222", "region": "us-west-2", "reason": "AccessDenied"}]
    assert plan["invalid_wave_instances"] == [dict(invalid, account_id="222222222222", region="us-east-1")]
    assert plan["pattern"] == "cross-account"


def test_skipped_instances_do_not_count_in_the_failure_rate():
    assert failure_rate({"installed": 3, "failed": 1, "skipped_ssm_offline": 4}) == 0.25
    assert failure_rate({"skipped_not_managed": 2}) == 0.0


def job(account, region, instance_ids, result):
    item = {"account_id": account["account_id"], "region": region, "instance_ids": instance_ids}
    return {"name": f"{account['account_id']}/{region}", "item": item, "result": result}


def test_an_install_task_that_failed_without_results_fails_each_of_its_instances():
    outcome = wave_outcome([
        job(HR, "us-east-1", ["i-1", "i-2"], {"failed": True, "msg": "staging credentials are missing"}),
        job(RETAIL, "us-east-1", ["i-3"], {"results": [{"instance_id": "i-3", "status": "installed"}]}),
    ], wave=1, wall_seconds=12.34)

    assert outcome["counts"]["failed"] == 2 and outcome["counts"]["installed"] == 1
    assert outcome["failure_rate"] == round(2 / 3, 4)
    assert outcome["targets"][0]["results"][0]["reason"] == "staging credentials are missing"
    assert outcome["wall_seconds"] == 12.3


def test_the_summary_adds_up_per_wave_and_per_account():
    plan = build_plan([discovered(HR, "us-east-1", ("i-1", 1, "high"), ("i-2", 2, "high"))], [HR])
    first = wave_outcome([job(HR, "us-east-1", ["i-1"], {"results": [{"instance_id": "i-1", "status": "installed"}]})], 1, 5)
    second = wave_outcome([job(HR, "us-east-1", ["i-2", "i-3"], {"results": [
        {"instance_id": "i-2", "status": "already_registered"},
        {"instance_id": "i-3", "status": "skipped_ssm_offline"},
    ]})], 2, 7)

    summary = summarize(plan, [first, second], [], 20, None, 0.1)

    assert summary["deployment_pattern"] == "same-account"
    assert [wave["wave"] for wave in summary["waves"]] == [1, 2]
    totals = summary["totals"]
    assert (totals["attempted"], totals["installed"], totals["already_registered"], totals["skipped"]) == (2, 1, 1, 1)
    assert totals["success_rate"] == 1.0
    assert summary["accounts"]["777777777777"]["attempted"] == 2
    assert summary["waves"][1]["accounts"]["777777777777"]["skipped"] == 1


def test_history_results_carry_account_region_wave_name_and_priority_and_only_failures_in_detail():
    plan = build_plan([discovered(HR, "us-east-1", ("i-1", 1, "critical"), ("i-2", 2, "low"))], [HR])
    failed = {"instance_id": "i-1", "status": "failed", "error_category": "network"}
    installed = {"instance_id": "i-2", "status": "installed", "command_id": "c-2", "ssm_status": "Success",
                 "stdout_tail": "agent installed", "source_server_id": "s-2", "duration_seconds": 140.5}
    first = wave_outcome([job(HR, "us-east-1", ["i-1"], {"results": [failed]})], 1, 5)
    second = wave_outcome([job(HR, "us-east-1", ["i-2"], {"results": [installed]})], 2, 5)

    results = history_results(plan, [first, second])

    assert results == [
        {"instance_id": "i-1", "status": "failed", "error_category": "network", "account_id": "777777777777",
         "region": "us-east-1", "wave": 1, "name": "i-1", "priority": "critical"},
        {"instance_id": "i-2", "status": "installed", "account_id": "777777777777", "region": "us-east-1", "wave": 2,
         "name": "i-2", "priority": "low"},
    ]


def test_one_discovery_run_with_targets_plans_like_a_loop_and_keeps_failures():
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.deployment import discover_targets

    credentials = {"222222222222": {"access_key": "AK", "secret_key": "SK", "session_token": "ST"}}
    targets = discover_targets([RETAIL, HR], credentials, unreachable=[])
    names = ["222222222222/us-east-1", "222222222222/us-west-2", "777777777777/us-east-1"]
    assert [target["name"] for target in targets] == names
    assert targets[0]["account_id"] == "222222222222" and targets[0]["access_key"] == "AK"
    assert "access_key" not in targets[2] and "account_id" not in targets[2]
    assert discover_targets([RETAIL, HR], credentials, unreachable=[{"account_id": "222222222222"}])[0]["name"] == \
        "777777777777/us-east-1"

    run = {"discoveries": [
        dict(discovered(RETAIL, "us-east-1", ("i-a", 1, "low")), name="222222222222/us-east-1"),
        {"name": "222222222222/us-west-2", "failed": True, "msg": "AccessDenied"},
    ]}
    for entry in run["discoveries"]:
        entry.pop("item", None)
    plan = build_plan(run, [RETAIL])
    assert plan["waves"][0]["targets"][0]["instance_ids"] == ["i-a"]
    assert plan["unreachable"] == [{"account_id": "222222222222", "region": "us-west-2", "reason": "AccessDenied"}]

    failed_run = build_plan({"failed": True, "msg": "bad tag filter"}, [RETAIL])
    assert [entry["reason"] for entry in failed_run["unreachable"]] == ["bad tag filter", "bad tag filter"]


def test_install_targets_carry_each_account_session_and_the_staging_session_cross_account():
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.deployment import install_targets

    plan = build_plan([discovered(RETAIL, "us-east-1", ("i-a", 1, "low")), discovered(HR, "us-east-1", ("i-b", 1, "low"))],
                      [RETAIL, HR], progress_dir="/p")
    credentials = {"222222222222": {"access_key": "AK", "secret_key": "SK", "session_token": "ST"},
                   "333333333333": {"access_key": "SAK", "secret_key": "SSK", "session_token": "SST"}}
    retail, hr = install_targets(plan["waves"][0]["targets"], credentials)
    assert retail == {"name": "222222222222/us-east-1", "instance_ids": ["i-a"], "region": "us-east-1",
                      "drs_region": "us-east-1", "staging_account_id": "333333333333",
                      "progress_file": "/p/wave-1-222222222222-us-east-1.json", "access_key": "AK", "secret_key": "SK",
                      "session_token": "ST", "account_id": "222222222222", "staging_access_key": "SAK",
                      "staging_secret_key": "SSK", "staging_session_token": "SST"}
    assert "access_key" not in hr and "staging_access_key" not in hr and hr["staging_account_id"] == "777777777777"


def test_extension_runs_group_a_waves_registered_servers_by_target_staging_account_and_drs_region():
    extending = dict(RETAIL, target_account_id="444444444444")
    same_account = dict(HR, target_account_id="777777777777")  # recovers where it replicates: nothing to extend
    plan = build_plan([
        discovered(extending, "us-east-1", ("i-a", 1, "high"), ("i-b", 1, "high"), ("i-c", 1, "low")),
        discovered(extending, "us-west-2", ("i-d", 1, "high")),
        discovered(same_account, "us-east-1", ("i-e", 1, "high")),
    ], [extending, same_account])
    outcome = wave_outcome([
        {"name": "222222222222/us-east-1", "item": {"account_id": "222222222222", "region": "us-east-1"}, "result": {"results": [
            {"instance_id": "i-a", "status": "installed", "source_server_id": "s-00000000000000001"},
            {"instance_id": "i-b", "status": "already_registered", "source_server_id": "s-00000000000000002"},
            {"instance_id": "i-c", "status": "failed", "source_server_id": None}]}},
        {"name": "222222222222/us-west-2", "item": {"account_id": "222222222222", "region": "us-west-2"}, "result": {"results": [
            {"instance_id": "i-d", "status": "skipped_ssm_offline"}]}},
        {"name": "777777777777/us-east-1", "item": {"account_id": "777777777777", "region": "us-east-1"}, "result": {"results": [
            {"instance_id": "i-e", "status": "installed", "source_server_id": "s-00000000000000005"}]}},
    ], 1, 10.0)

    runs = extension_targets(plan["waves"][0], outcome, [{"account_id": "444444444444", "reason": "AccessDenied"}])

    assert runs == [{
        "name": "333333333333/us-east-1 into 444444444444", "target_account_id": "444444444444",
        "staging_account_id": "333333333333", "region": "us-east-1", "unreachable_reason": "AccessDenied",
        "source_server_arns": ["arn:aws:drs:us-east-1:333333333333:source-server/s-00000000000000001",
                               "arn:aws:drs:us-east-1:333333333333:source-server/s-00000000000000002"],
    }]


def test_extension_outcome_counts_servers_and_fails_every_server_of_a_run_that_could_not_start():
    run = {"target_account_id": "444444444444", "staging_account_id": "333333333333", "region": "us-east-1",
           "source_server_arns": ["arn-1", "arn-2", "arn-3"], "unreachable_reason": "AccessDenied"}
    done = {"item": run, "extended": [{}], "already_extended": [{}], "left_out": [{"staging_source_server_arn": "arn-3"}],
            "failed_servers": [], "capacity": {"after": 2, "limit": 300}, "extension_warnings": []}
    stopped = {"item": run, "failed": False, "msg": "Access denied while listing the target account's source servers"}
    unreachable = {"item": run, "skipped": True}

    entries = extension_outcome([done, stopped, unreachable], 3)

    assert [(e["extended"], e["already_extended"], e["failed"], e["left_out"]) for e in entries] == [
        (1, 1, 0, 1), (0, 0, 3, 0), (0, 0, 3, 0)]
    assert entries[0]["left_out_servers"] == ["arn-3"]
    assert entries[1]["message"].startswith("Access denied")
    assert "could not be reached: AccessDenied" in entries[2]["message"]
