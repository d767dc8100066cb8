"""The labels a manager puts on a node as it joins, before the node is reported joined, so services
can be placed by them (``placement.preferences: - spread: node.labels.swarmkeeper.az``,
``placement.constraints: [node.labels.swarmkeeper.lifecycle == on-demand]``).

They come from the joining instance as EC2 describes it, and the role from its Auto Scaling group;
verify-node sets them from its parameters (``NodeLabels.parameters``). A value reaches a shell on
the manager, so each must match its strict pattern here, before any command is sent, and again as
the document's allowedPattern (the same patterns). Nothing here touches AWS.
"""

from __future__ import annotations

import re

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.models import InstanceFacts, Role

AZ_LABEL = "swarmkeeper.az"
INSTANCE_TYPE_LABEL = "swarmkeeper.instance-type"
LIFECYCLE_LABEL = "swarmkeeper.lifecycle"
ROLE_LABEL = "swarmkeeper.role"

SPOT = "spot"
ON_DEMAND = "on-demand"

# A Region's zone (eu-west-1b), a Local or Wavelength Zone (us-west-2-lax-1a, us-east-1-wl1-bos-wlz-1).
AZ_PATTERN = r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}([a-z]|(-[a-z0-9]+)+)"
# family.size (t4g.small, m7i-flex.large, u-6tb1.metal).
INSTANCE_TYPE_PATTERN = r"[a-z0-9][a-z0-9-]{0,30}\.[a-z0-9][a-z0-9-]{0,30}"


class UnlabelledNode(ValueError):
    """The instance cannot give the node its labels; the message says why."""


@frozen
class NodeLabels:
    availability_zone: str
    instance_type: str
    lifecycle: str  # spot | on-demand
    role: Role

    def labels(self) -> dict[str, str]:
        return {
            AZ_LABEL: self.availability_zone,
            INSTANCE_TYPE_LABEL: self.instance_type,
            LIFECYCLE_LABEL: self.lifecycle,
            ROLE_LABEL: str(self.role),
        }

    def parameters(self) -> dict[str, str]:
        """verify-node's parameters for these labels (its ``Role`` is the role label too)."""
        return {
            "AvailabilityZone": self.availability_zone,
            "InstanceType": self.instance_type,
            "Lifecycle": self.lifecycle,
            "Role": str(self.role),
        }


def node_labels(instance: InstanceFacts | None, role: Role) -> NodeLabels:
    """The labels of ``instance`` joining as ``role``. Raises UnlabelledNode when EC2 did not say
    where it runs or what type it is, or said something that is not a zone or a type."""
    if instance is None:
        raise UnlabelledNode("EC2 does not describe the instance")
    zone, instance_type = instance.availability_zone or "", instance.instance_type or ""
    if not re.fullmatch(AZ_PATTERN, zone):
        raise UnlabelledNode(f"EC2 gives no Availability Zone to label it with (got {zone[:64]!r})")
    if not re.fullmatch(INSTANCE_TYPE_PATTERN, instance_type):
        raise UnlabelledNode(f"EC2 gives no instance type to label it with (got {instance_type[:64]!r})")
    return NodeLabels(
        availability_zone=zone,
        instance_type=instance_type,
        lifecycle=SPOT if instance.spot else ON_DEMAND,
        role=role,
    )
