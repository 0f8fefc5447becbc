import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import replication


def server(state, lag=None, backlog=0, error=None, steps=None, total=100, replicated=100, eta=None):
    info = {"dataReplicationState": state, "replicatedDisks": [
        {"deviceName": "/dev/xvda", "totalStorageBytes": total, "replicatedStorageBytes": replicated,
         "backloggedStorageBytes": backlog}]}
    if lag is not None:
        info["lagDuration"] = lag
    if error:
        info["dataReplicationError"] = {"error": error}
    if steps:
        info["dataReplicationInitiation"] = {"steps": steps}
    if eta:
        info["etaDateTime"] = eta
    return {"sourceServerID": "s-1234567890abcdef0", "dataReplicationInfo": info,
            "sourceProperties": {"identificationHints": {"awsInstanceID": "i-0123456789abcdef0"}}}


@pytest.mark.parametrize("text, seconds", [("PT0S", 0), ("PT2M30S", 150), ("P1DT1H", 90000), ("PT0.5S", 0.5),
                                           ("", None), ("PT", None), ("soon", None)])
def test_lag_durations_are_read_as_drs_writes_them(text, seconds):
    assert replication.duration_seconds(text) == seconds


@pytest.mark.parametrize("entry, verdict", [
    (server("CONTINUOUS", "PT10S"), "healthy"),
    (server("CONTINUOUS", "PT10M"), "syncing"),
    (server("CONTINUOUS", "PT0S", backlog=5), "syncing"),
    (server("INITIAL_SYNC", total=100, replicated=40, eta="2026-12-04T10:00:00Z"), "syncing"),
    (server("BACKLOG"), "syncing"),
    (server("STALLED"), "stalled"),
    (server("CONTINUOUS", "PT0S", error="NOT_CONVERGING"), "stalled"),
    (server("INITIATING", steps=[{"name": "WAIT", "status": "SUCCEEDED"},
                                 {"name": "LAUNCH_REPLICATION_SERVER", "status": "FAILED"}]), "stalled"),
    (server("DISCONNECTED"), "disconnected"),
    (server("PAUSED"), "stopped"),
    (server("STOPPED"), "stopped"),
])
def test_each_replication_gets_its_verdict(entry, verdict):
    assert replication.assess(entry, 300, "us-east-1")["verdict"] == verdict


def test_a_failed_initiation_step_names_its_error_category_and_remediation():
    entry = server("INITIATING", steps=[{"name": "WAIT", "status": "SUCCEEDED"},
                                        {"name": "AUTHENTICATE_WITH_SERVICE", "status": "FAILED"}])
    health = replication.assess(entry, 300, "eu-west-1")
    assert health["failed_step"] == "AUTHENTICATE_WITH_SERVICE"
    assert health["error"] == "FAILED_TO_AUTHENTICATE_WITH_SERVICE"
    assert health["error_category"] == "network"
    assert "drs.eu-west-1.amazonaws.com" in health["remediation"]


def test_every_drs_replication_error_has_a_category_and_a_remediation():
    import botocore.session

    errors = botocore.session.get_session().get_service_model("drs").shape_for("DataReplicationErrorString").enum
    assert sorted(replication.ERRORS) == sorted(errors)
    for error in errors:
        category, remediation = replication.ERRORS[error]
        assert category in ("agent", "network", "permissions", "quota", "capacity") and remediation.endswith(".")


def test_the_initial_sync_reports_its_progress_and_eta():
    health = replication.assess(server("INITIAL_SYNC", total=200, replicated=50, eta="2026-12-04T10:00:00Z"), 300,
                                "us-east-1")
    assert (health["replicated_bytes"], health["total_bytes"], health["eta"]) == (50, 200, "2026-12-04T10:00:00Z")
    assert "50 of 200 bytes" in health["reason"] and "ETA 2026-12-04T10:00:00Z" in health["reason"]
