"""STS on the wire: AssumeRole and GetCallerIdentity answered from the lab's identities."""


def assume_role(world, call):
    params = call.params
    issued = world.identities.assume_role(
        call.credential,
        role_arn=params["RoleArn"],
        session_name=params["RoleSessionName"],
        external_id=params.get("ExternalId"),
        duration_seconds=params.get("DurationSeconds"),
    )
    return {
        "Credentials": {
            "AccessKeyId": issued.access_key_id,
            "SecretAccessKey": issued.secret_access_key,
            "SessionToken": issued.session_token,
            "Expiration": issued.expires_at,
        },
        "AssumedRoleUser": {"AssumedRoleId": issued.user_id, "Arn": issued.arn},
        "PackedPolicySize": 0,
    }


def get_caller_identity(world, call):
    credential = call.credential
    return {"UserId": credential.user_id, "Account": credential.account_id, "Arn": credential.arn}
