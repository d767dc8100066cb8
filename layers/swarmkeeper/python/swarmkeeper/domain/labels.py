"""The labels a manager puts on a node as it joins, before the node is reported joined, so services
can be placed by them (``placement.preferences: - spread: node.labels.swarmkeeper.az``,
``placement.constraints: [node.labels.swarmkeeper.lifecycle == on-demand]``).

They come from the joining instance as EC2 describes it, and the role from its Auto Scaling group;
verify-node sets them from its parameters (``label_parameters``), whose allowed patterns the
document checks. Nothing here touches AWS.
"""

from __future__ import annotations

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.models import InstanceFacts, Role

AZ_LABEL = "swarmkeeper.az"
INSTANCE_TYPE_LABEL = "swarmkeeper.instance-type"
LIFECYCLE_LABEL = "swarmkeeper.lifecycle"
ROLE_LABEL = "swarmkeeper.role"

SPOT = "spot"
ON_DEMAND = "on-demand"


@frozen
class NodeLabels:
    availability_zone: str
    instance_type: str
    lifecycle: str  # SPOT | ON_DEMAND
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


def node_labels(instance: InstanceFacts | None, role: Role) -> NodeLabels | None:
    """The labels of ``instance`` joining as ``role``; None when EC2 did not say where it runs or
    what type it is (the node cannot be labelled, so it is not verified either)."""
    if instance is None or not instance.availability_zone or not instance.instance_type:
        return None
    return NodeLabels(
        availability_zone=instance.availability_zone,
        instance_type=instance.instance_type,
        lifecycle=SPOT if instance.spot else ON_DEMAND,
        role=role,
    )
