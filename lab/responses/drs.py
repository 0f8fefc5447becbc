"""Elastic Disaster Recovery on the wire: every operation acts in the caller's account and region."""


def _paged(items_key, items, token):
    response = {items_key: items}
    if token:
        response["nextToken"] = token
    return response


def initialize_service(world, call):
    world.drs.initialize_service(call.account_id, call.region)
    return {}


def describe_source_servers(world, call):
    params = call.params
    items, token = world.drs.describe_source_servers(
        call.account_id, call.region, params.get("filters") or {}, params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def list_extensible_source_servers(world, call):
    params = call.params
    items, token = world.drs.list_extensible_source_servers(
        call.account_id, call.region, params["stagingAccountID"], params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def create_extended_source_server(world, call):
    server = world.drs.create_extended_source_server(
        call.account_id, call.region, call.params["sourceServerArn"], call.params.get("tags"))
    return {"sourceServer": server}


def list_staging_accounts(world, call):
    params = call.params
    accounts, token = world.drs.list_staging_accounts(
        call.account_id, call.region, params.get("maxResults"), params.get("nextToken"))
    return _paged("accounts", accounts, token)


def disconnect_source_server(world, call):
    return world.drs.disconnect_source_server(call.account_id, call.region, call.params["sourceServerID"])


def delete_source_server(world, call):
    world.drs.delete_source_server(call.account_id, call.region, call.params["sourceServerID"])
    return {}


def create_replication_configuration_template(world, call):
    return world.drs.create_replication_configuration_template(call.account_id, call.region, call.params)


def describe_replication_configuration_templates(world, call):
    params = call.params
    items, token = world.drs.describe_replication_configuration_templates(
        call.account_id, call.region, params.get("replicationConfigurationTemplateIDs"),
        params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def tag_resource(world, call):
    world.drs.tag_resource(call.account_id, call.region, call.params["resourceArn"], call.params["tags"])
    return {}


def untag_resource(world, call):
    world.drs.untag_resource(call.account_id, call.region, call.params["resourceArn"], call.params["tagKeys"])
    return {}


def list_tags_for_resource(world, call):
    return {"tags": world.drs.list_tags_for_resource(call.account_id, call.region, call.params["resourceArn"])}


def start_recovery(world, call):
    params = call.params
    job = world.drs.recovery.start_recovery(
        call.account_id, call.region, params["sourceServers"], params.get("isDrill", False), params.get("tags"))
    return {"job": job}


def terminate_recovery_instances(world, call):
    job = world.drs.recovery.terminate_recovery_instances(call.account_id, call.region, call.params["recoveryInstanceIDs"])
    return {"job": job}


def describe_jobs(world, call):
    params = call.params
    items, token = world.drs.recovery.describe_jobs(
        call.account_id, call.region, params.get("filters") or {}, params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def describe_job_log_items(world, call):
    params = call.params
    items, token = world.drs.recovery.describe_job_log_items(
        call.account_id, call.region, params["jobID"], params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def describe_recovery_instances(world, call):
    params = call.params
    items, token = world.drs.recovery.describe_recovery_instances(
        call.account_id, call.region, params.get("filters") or {}, params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)


def describe_recovery_snapshots(world, call):
    params = call.params
    items, token = world.drs.recovery.describe_recovery_snapshots(
        call.account_id, call.region, params["sourceServerID"], params.get("filters") or {}, params.get("order", "ASC"),
        params.get("maxResults"), params.get("nextToken"))
    return _paged("items", items, token)
