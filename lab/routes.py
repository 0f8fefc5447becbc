"""Every operation the lab answers itself, in one table; all others go to moto."""

from lab.responses import sts

ROUTES = {
    # --- STS ---
    ("sts", "AssumeRole"): sts.assume_role,
    ("sts", "GetCallerIdentity"): sts.get_caller_identity,
    # --- SSM ---
    # --- DRS ---
}
