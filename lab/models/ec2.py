"""EC2 resources read their own tags directly.

moto finds one resource's tags by filtering every tag of the account (DescribeTags with a
resource-id filter), so DescribeInstances over N instances costs N times all the account's tags:
about two seconds for the 260 instances of one account-region of the scale scenario, all of it the
simulator's own time. Reading the resource's entry in the same tag store gives the same tags, in the
same order and shape, at once.
"""

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def _own_tags(self):
    if not self.id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [{"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in self.ec2_backend.tags.get(self.id, {}).items()]


TaggedEC2Resource.get_tags = _own_tags
