"""Auto Scaling: complete a lifecycle action; mark an instance unhealthy when there is none."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class LifecycleActions:
    def __init__(self, autoscaling: Any):
        self._asg = autoscaling

    def complete(self, group: str, hook: str, instance_id: str, result: str) -> bool:
        """True when a pending action was completed; False when there was none (e.g. the join came
        from the `running` fallback, or the hook already timed out)."""
        try:
            self._asg.complete_lifecycle_action(
                AutoScalingGroupName=group,
                LifecycleHookName=hook,
                InstanceId=instance_id,
                LifecycleActionResult=result,
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
