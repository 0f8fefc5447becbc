"""Every operation the lab answers itself, in one table; all others go to moto. A second table names
the calls moto answers that the lab watches, to publish the EventBridge events AWS publishes for them."""

from lab.responses import drs
from lab.responses import ec2
from lab.responses import sqs
from lab.responses import ssm
from lab.responses import sts

ROUTES = {
    # --- STS ---
    ("sts", "AssumeRole"): sts.assume_role,
    ("sts", "GetCallerIdentity"): sts.get_caller_identity,
    # --- SSM ---
    ("ssm", "DescribeInstanceInformation"): ssm.describe_instance_information,
    ("ssm", "SendCommand"): ssm.send_command,
    ("ssm", "ListCommands"): ssm.list_commands,
    ("ssm", "ListCommandInvocations"): ssm.list_command_invocations,
    ("ssm", "GetCommandInvocation"): ssm.get_command_invocation,
    ("ssm", "CancelCommand"): ssm.cancel_command,
    # --- DRS ---
    ("drs", "InitializeService"): drs.initialize_service,
    ("drs", "DescribeSourceServers"): drs.describe_source_servers,
    ("drs", "ListExtensibleSourceServers"): drs.list_extensible_source_servers,
    ("drs", "CreateExtendedSourceServer"): drs.create_extended_source_server,
    ("drs", "ListStagingAccounts"): drs.list_staging_accounts,
    ("drs", "DisconnectSourceServer"): drs.disconnect_source_server,
    ("drs", "DeleteSourceServer"): drs.delete_source_server,
    ("drs", "CreateReplicationConfigurationTemplate"): drs.create_replication_configuration_template,
    ("drs", "DescribeReplicationConfigurationTemplates"): drs.describe_replication_configuration_templates,
    ("drs", "TagResource"): drs.tag_resource,
    ("drs", "UntagResource"): drs.untag_resource,
    ("drs", "ListTagsForResource"): drs.list_tags_for_resource,
    ("drs", "StartRecovery"): drs.start_recovery,
    ("drs", "TerminateRecoveryInstances"): drs.terminate_recovery_instances,
    ("drs", "DescribeJobs"): drs.describe_jobs,
    ("drs", "DescribeJobLogItems"): drs.describe_job_log_items,
    ("drs", "DescribeRecoveryInstances"): drs.describe_recovery_instances,
    ("drs", "DescribeRecoverySnapshots"): drs.describe_recovery_snapshots,
    # --- SQS ---
    ("sqs", "ReceiveMessage"): sqs.receive_message,
}

WATCHED = {
    ("ec2", "RunInstances"): ec2.run_instances,
    ("ec2", "StartInstances"): ec2.changes_state,
    ("ec2", "StopInstances"): ec2.changes_state,
    ("ec2", "TerminateInstances"): ec2.changes_state,
    ("ec2", "CreateTags"): ec2.changes_tags,
    ("ec2", "DeleteTags"): ec2.changes_tags,
}
