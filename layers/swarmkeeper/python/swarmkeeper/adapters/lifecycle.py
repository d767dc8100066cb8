"""Auto Scaling: complete a lifecycle action; mark an instance unhealthy when there is none; what a
group is still bringing into service; an instance's lifecycle state."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from swarmkeeper.domain.models import GroupLaunches

# Lifecycle states of an instance on its way into service (warm-pool states start with "Warmed:").
LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})


class LifecycleActions:
    def __init__(self, autoscaling: Any):
        self._asg = autoscaling

    def complete(self, group: str, hook: str, instance_id: str, result: str, token: str = "") -> bool:
        """True when a pending action was completed; False when there was none (e.g. the join came
        from the `running` fallback, or the hook already timed out). With a ``token``, only the
        action of that token is completed, not whichever action of the instance is pending now."""
        by_token = {"LifecycleActionToken": token} if token else {}
        try:
            self._asg.complete_lifecycle_action(
                AutoScalingGroupName=group,
                LifecycleHookName=hook,
                InstanceId=instance_id,
                LifecycleActionResult=result,
                **by_token,
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ValidationError":
                return False
            raise
        return True

    def heartbeat(self, group: str, hook: str, instance_id: str) -> bool:
        """Keep a pending lifecycle action waiting; False when there is none."""
        try:
            self._asg.record_lifecycle_action_heartbeat(
                AutoScalingGroupName=group, LifecycleHookName=hook, InstanceId=instance_id
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ValidationError":
                return False
            raise
        return True

    def mark_unhealthy(self, instance_id: str) -> bool:
        """Make Auto Scaling replace an InService instance that failed to join."""
        try:
            self._asg.set_instance_health(
                InstanceId=instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ValidationError":
                return False
            raise
        return True

    def launches(self, group: str) -> GroupLaunches:
        """What the group is bringing into service: instances launching, and capacity still to launch."""
        groups = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        if not groups:
            return GroupLaunches()
        instances = groups[0].get("Instances", [])
        launching = tuple(i["InstanceId"] for i in instances if i.get("LifecycleState") in LAUNCHING_STATES)
        in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
        owed = int(groups[0].get("DesiredCapacity", 0)) - in_service - len(launching)
        return GroupLaunches(launching, max(0, owed))

    def lifecycle_state(self, instance_id: str) -> str | None:
        """Auto Scaling's lifecycle state of the instance (Pending:Wait, InService, Warmed:Pending,
        ...); None when it is in no Auto Scaling group."""
        found = self._asg.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        return found[0]["LifecycleState"] if found else None
