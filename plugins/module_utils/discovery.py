# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Find the DR-tagged instances of one account and region and arrange them in waves.

AWS calls: one paged DescribeInstances (1,000 instances a page, tag and state filters applied by
EC2; with given instance ids, one per 200 of them) and, for SSM, DescribeInstanceInformation filtered on the found instance ids in chunks of 50.
A chunk of 50 fills exactly one page (SSM pages hold at most 50), so SSM costs one call per 50
DR instances, however many other managed instances the region holds; an unfiltered listing would
cost one call per 50 managed instances of the whole region.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import parse_wave
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import tags_to_dict

EC2_PAGE_SIZE = 1000
# EC2 takes at most 200 values in one filter.
EC2_ID_CHUNK = 200
SSM_PAGE_SIZE = 50
# The InstanceIds filter accepts up to 100 values; 50 keeps each chunk to a single page.
SSM_ID_CHUNK = SSM_PAGE_SIZE

# The members of an EC2 instance that describe_instance reads: a client may read only these (aws.ResponseParsers).
INSTANCE_MEMBERS = ("InstanceId", "State", "Platform", "InstanceType", "PrivateIpAddress", "Tags")
ANSWERS_READ = {("ec2", "DescribeInstances"): {"Instance": INSTANCE_MEMBERS}}

NOT_MANAGED = {"managed": False, "ping_status": "NotManaged"}
# A deployment installs on running instances only.
INSTANCE_STATES_DEPLOYED = ["running"]


def chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def describe_tagged_instances(ec2, tag_filters, instance_states, instance_ids=None):
    """Raw EC2 instances that carry every tag filter (any of its values) and are in one of the states; only those
    of ``instance_ids`` when given (an instance-id filter, which unlike InstanceIds does not fail on an id of
    another account or region)."""
    filters = [{"Name": f"tag:{key}", "Values": values} for key, values in tag_filters.items()]
    filters.append({"Name": "instance-state-name", "Values": list(instance_states)})
    id_chunks = [None] if instance_ids is None else list(chunks(sorted(instance_ids), EC2_ID_CHUNK))
    found = []
    for chunk in id_chunks:
        chunk_filters = filters if chunk is None else filters + [{"Name": "instance-id", "Values": chunk}]
        for page in pages(ec2.describe_instances, Filters=chunk_filters, MaxResults=EC2_PAGE_SIZE):
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
    return found


def ssm_status_by_instance(ssm, instance_ids):
    """{instance id: SSM view} for the instances SSM manages; unmanaged ones are absent."""
    status = {}
    for chunk in chunks(sorted(instance_ids), SSM_ID_CHUNK):
        listing = pages(
            ssm.describe_instance_information,
            Filters=[{"Key": "InstanceIds", "Values": chunk}],
            MaxResults=SSM_PAGE_SIZE,
        )
        for page in listing:
            for info in page["InstanceInformationList"]:
                status[info["InstanceId"]] = {
                    "managed": True,
                    "ping_status": info.get("PingStatus"),
                    "last_ping_date_time": _iso(info.get("LastPingDateTime")),
                    "platform_type": info.get("PlatformType"),
                    "platform_name": info.get("PlatformName"),
                    "platform_version": info.get("PlatformVersion"),
                    "agent_version": info.get("AgentVersion"),
                }
    return status


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def describe_instance(raw, account_id, region, wave_tag_key, priority_tag_key):
    """An EC2 instance as discovery reports it, with its wave (None when unusable) and the reason."""
    tags = tags_to_dict(raw.get("Tags"))
    wave, wave_error = parse_wave(tags, wave_tag_key)
    return {
        "instance_id": raw["InstanceId"],
        "name": tags.get("Name", ""),
        "account_id": account_id,
        "region": region,
        "platform": "windows" if raw.get("Platform", "").lower() == "windows" else "linux",
        "state": raw["State"]["Name"],
        "instance_type": raw.get("InstanceType"),
        "private_ip_address": raw.get("PrivateIpAddress"),
        "wave": wave,
        "wave_error": wave_error,
        "priority": tags.get(priority_tag_key),
        "tags": tags,
    }


def select_waves(instances, waves):
    """The instances in the given waves (None: all); those without a usable wave always stay."""
    if waves is None:
        return list(instances)
    wanted = set(waves)
    return [i for i in instances if i["wave"] is None or i["wave"] in wanted]


def arrange_in_waves(instances, ssm_status=None, ssm_looked_up=None):
    """The discovery result: waves in numeric order, instances without a usable wave apart.

    ``ssm_status`` (None: not looked up) adds each instance's SSM view; ``ssm_looked_up`` (None: every instance)
    names the instances it was looked up for, the others get none.
    """
    ordered = sorted(instances, key=lambda i: (i["wave"] is None, i["wave"] or 0, i["instance_id"]))
    by_wave = {}
    invalid = []
    for instance in ordered:
        if ssm_status is not None and (ssm_looked_up is None or instance["instance_id"] in ssm_looked_up):
            instance["ssm"] = ssm_status.get(instance["instance_id"], NOT_MANAGED)
        if instance["wave"] is None:
            invalid.append({"instance_id": instance["instance_id"], "name": instance["name"], "reason": instance["wave_error"]})
        else:
            by_wave.setdefault(instance["wave"], []).append(instance["instance_id"])

    counts = {
        "instances": len(ordered),
        "in_waves": len(ordered) - len(invalid),
        "invalid_wave": len(invalid),
        "waves": len(by_wave),
    }
    if ssm_status is not None:
        pings = [i["ssm"]["ping_status"] for i in ordered if "ssm" in i]
        counts["ssm_online"] = pings.count("Online")
        counts["ssm_not_managed"] = pings.count("NotManaged")
        counts["ssm_not_online"] = len(pings) - counts["ssm_online"] - counts["ssm_not_managed"]
    return {
        "instances": ordered,
        "waves": [{"wave": wave, "instance_ids": ids, "count": len(ids)} for wave, ids in sorted(by_wave.items())],
        "invalid_wave_instances": invalid,
        "counts": counts,
    }


def discover(ec2, ssm, account_id, region, options):
    """Everything ``drs_discover`` returns but the caller identity.

    ``options`` holds checked input: ``tag_filters`` ({key: [values]}), ``wave_tag_key``,
    ``priority_tag_key``, ``waves`` (list of ints or None), ``instance_states``, ``include_ssm_status``, and
    optionally ``ssm_scope``: a test of a found instance, whether its SSM view is wanted (a run limited to
    some instances or waves reads SSM for those only; the others get no ``ssm``), and ``instance_ids``: only
    these instances are looked for (a run whose hosts say where each instance is).
    """
    raw = describe_tagged_instances(ec2, options["tag_filters"], options["instance_states"], options.get("instance_ids"))
    described = [
        describe_instance(i, account_id, region, options["wave_tag_key"], options["priority_tag_key"]) for i in raw
    ]
    instances = select_waves(described, options["waves"])
    ssm_status = looked_up = None
    if options["include_ssm_status"]:
        wanted = options.get("ssm_scope")
        looked_up = [i["instance_id"] for i in instances if wanted is None or wanted(i)]
        ssm_status = ssm_status_by_instance(ssm, looked_up)
    return arrange_in_waves(instances, ssm_status, None if options.get("ssm_scope") is None else set(looked_up))
