"""The cluster's load balancer (elbv2), its target groups' attachment to the worker group (Auto Scaling)
and its two security groups' rules (EC2): typed items in and out.

What is the cluster's: a listener or target group with the tag ``swarmkeeper:cluster`` = the cluster
(and a target group named with its prefix), a rule whose description is ``rule_description(port)``.
Nothing else is changed or removed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from swarmkeeper.domain.listeners import Listener, ListenerSpec, LoadBalancerState, Protocol, TargetGroup
from swarmkeeper.settings import LoadBalancerSettings

CLUSTER_TAG = "swarmkeeper:cluster"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
TAGS_PER_CALL = 20  # DescribeTags takes at most 20 ARNs
HEALTH_CHECK = {
    "HealthCheckProtocol": "TCP",
    "HealthCheckPort": "traffic-port",
    "HealthCheckIntervalSeconds": 10,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
}
_OUT = ("unused",)  # a target in no other state is out of the group (draining is still in)


def rule_description(cluster: str, port: int) -> str:
    return f"swarmkeeper {cluster} published port {port}"


class LoadBalancerTargets:
    def __init__(
        self,
        elbv2: Any,
        autoscaling: Any,
        ec2: Any,
        settings: LoadBalancerSettings,
        cluster: str,
        worker_group: str,
    ):
        self._elb = elbv2
        self._autoscaling = autoscaling
        self._ec2 = ec2
        self._settings = settings
        self._cluster = cluster
        self._workers = worker_group

    # --- reading --------------------------------------------------------------------------------

    def state(self) -> LoadBalancerState:
        raw = list(
            self._pages("describe_listeners", "Listeners", LoadBalancerArn=self._settings.load_balancer_arn)
        )
        groups = self._own_target_groups()
        ours = self._ours([item["ListenerArn"] for item in raw])
        listeners = tuple(
            Listener(
                arn=item["ListenerArn"],
                port=int(item["Port"]),
                protocol=str(item.get("Protocol", "")),
                certificate=next((c["CertificateArn"] for c in item.get("Certificates") or []), ""),
                target_group_arn=_forwards_to(item),
                ours=item["ListenerArn"] in ours,
            )
            for item in raw
        )
        client_ports = self._rule_ports(self._settings.security_group)
        target_ports = self._rule_ports(self._settings.target_security_group)
        return LoadBalancerState(listeners, groups, client_ports & target_ports, client_ports | target_ports)

    def targeted(self, instance_id: str) -> tuple[str, ...]:
        """The cluster's target groups that still hold the instance (healthy, draining, any state but
        out)."""
        holding = []
        for group in self._own_target_groups():
            try:
                health = self._elb.describe_target_health(
                    TargetGroupArn=group.arn, Targets=[{"Id": instance_id}]
                )["TargetHealthDescriptions"]
            except ClientError as err:
                if _code(err) in ("TargetGroupNotFound", "InvalidTarget"):
                    continue
                raise
            if any(item.get("TargetHealth", {}).get("State") not in _OUT for item in health):
                holding.append(group.arn)
        return tuple(holding)

    # --- writing --------------------------------------------------------------------------------

    def deregister(self, instance_id: str) -> tuple[str, ...]:
        groups = self.targeted(instance_id)
        for arn in groups:
            try:
                self._elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
            except ClientError as err:  # already on its way out (draining) or gone
                if _code(err) not in ("InvalidTarget", "TargetGroupNotFound"):
                    raise
        return groups

    def allow(self, port: int) -> None:
        description = rule_description(self._cluster, port)
        rules = (
            (
                self._settings.security_group,
                {"IpRanges": [{"CidrIp": self._settings.client_cidr, "Description": description}]},
            ),
            (
                self._settings.target_security_group,
                {
                    "UserIdGroupPairs": [
                        {"GroupId": self._settings.security_group, "Description": description}
                    ]
                },
            ),
        )
        for group, source in rules:
            permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **source}
            try:
                self._ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])
            except ClientError as err:
                if _code(err) != "InvalidPermission.Duplicate":
                    raise

    def revoke(self, port: int) -> None:
        for group in (self._settings.security_group, self._settings.target_security_group):
            for permission in self._own_rules(group):
                if permission["FromPort"] == port:
                    try:
                        self._ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[permission])
                    except ClientError as err:
                        if _code(err) != "InvalidPermission.NotFound":
                            raise

    def open(self, spec: ListenerSpec) -> str:
        """The port's target group (found or created) attached to the worker group, then the listener."""
        group = self._target_group(spec.port)
        self._autoscaling.attach_load_balancer_target_groups(
            AutoScalingGroupName=self._workers, TargetGroupARNs=[group]
        )
        existing = [
            item
            for item in self._pages(
                "describe_listeners", "Listeners", LoadBalancerArn=self._settings.load_balancer_arn
            )
            if int(item["Port"]) == spec.port
        ]
        if existing:
            return str(existing[0]["ListenerArn"])
        created = self._elb.create_listener(
            LoadBalancerArn=self._settings.load_balancer_arn,
            Port=spec.port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
            Tags=self._tags(),
            **_protocol(spec),
        )["Listeners"][0]
        return str(created["ListenerArn"])

    def change(self, listener: Listener, spec: ListenerSpec) -> None:
        self._elb.modify_listener(ListenerArn=listener.arn, **_protocol(spec))

    def close(self, listener: Listener) -> None:
        try:
            self._elb.delete_listener(ListenerArn=listener.arn)
        except ClientError as err:
            if _code(err) != "ListenerNotFound":
                raise
        own = {group.arn: group for group in self._own_target_groups()}
        if listener.target_group_arn in own:
            self.delete_target_group(own[listener.target_group_arn])

    def delete_target_group(self, group: TargetGroup) -> None:
        """Detached from the worker group (Auto Scaling deregisters its workers), then deleted."""
        self._autoscaling.detach_load_balancer_target_groups(
            AutoScalingGroupName=self._workers, TargetGroupARNs=[group.arn]
        )
        try:
            self._elb.delete_target_group(TargetGroupArn=group.arn)
        except ClientError as err:
            if _code(err) != "TargetGroupNotFound":
                raise

    # --- helpers ----------------------------------------------------------------------------------

    def _target_group(self, port: int) -> str:
        name = f"{self._settings.target_group_prefix}tcp-{port}"
        try:
            (found,) = self._elb.describe_target_groups(Names=[name])["TargetGroups"]
            if found["TargetGroupArn"] not in self._ours([found["TargetGroupArn"]]):
                raise ValueError(f"target group {name} does not carry the tag of cluster {self._cluster}")
            arn = str(found["TargetGroupArn"])
        except ClientError as err:
            if _code(err) != "TargetGroupNotFound":
                raise
            arn = str(
                self._elb.create_target_group(
                    Name=name,
                    Protocol="TCP",
                    Port=port,
                    VpcId=self._settings.vpc_id,
                    TargetType="instance",
                    Tags=self._tags(),
                    **HEALTH_CHECK,
                )["TargetGroups"][0]["TargetGroupArn"]
            )
        delay = str(self._settings.deregistration_delay_seconds)
        self._elb.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": delay}]
        )
        return arn

    def _own_target_groups(self) -> tuple[TargetGroup, ...]:
        prefix = f"{self._settings.target_group_prefix}tcp-"
        named = [
            item
            for item in self._pages("describe_target_groups", "TargetGroups")
            if str(item.get("TargetGroupName", "")).startswith(prefix)
        ]
        ours = self._ours([item["TargetGroupArn"] for item in named])
        return tuple(
            TargetGroup(item["TargetGroupArn"], int(item["Port"]))
            for item in named
            if item["TargetGroupArn"] in ours
        )

    def _ours(self, arns: list[str]) -> set[str]:
        ours: set[str] = set()
        for start in range(0, len(arns), TAGS_PER_CALL):
            described = self._elb.describe_tags(ResourceArns=arns[start : start + TAGS_PER_CALL])
            for item in described["TagDescriptions"]:
                tags = {tag["Key"]: tag.get("Value") for tag in item.get("Tags", [])}
                if tags.get(CLUSTER_TAG) == self._cluster:
                    ours.add(item["ResourceArn"])
        return ours

    def _own_rules(self, group: str) -> list[dict[str, Any]]:
        """This group's ingress rules the cluster made: one TCP port each, our description."""
        (described,) = self._ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
        rules = []
        for permission in described.get("IpPermissions", []):
            if permission.get("IpProtocol") != "tcp" or permission.get("FromPort") != permission.get(
                "ToPort"
            ):
                continue
            port = int(permission["FromPort"])
            mine = rule_description(self._cluster, port)
            ranges = [r for r in permission.get("IpRanges", []) if r.get("Description") == mine]
            pairs = [p for p in permission.get("UserIdGroupPairs", []) if p.get("Description") == mine]
            if ranges or pairs:
                rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
                rules.append({**rule, "IpRanges": ranges} if ranges else {**rule, "UserIdGroupPairs": pairs})
        return rules

    def _rule_ports(self, group: str) -> frozenset[int]:
        return frozenset(int(rule["FromPort"]) for rule in self._own_rules(group))

    def _tags(self) -> list[dict[str, str]]:
        return [{"Key": CLUSTER_TAG, "Value": self._cluster}]

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self._elb.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, [])


def _protocol(spec: ListenerSpec) -> dict[str, Any]:
    if spec.protocol is Protocol.TLS:
        return {
            "Protocol": "TLS",
            "Certificates": [{"CertificateArn": spec.certificate}],
            "SslPolicy": TLS_POLICY,
        }
    return {"Protocol": "TCP"}


def _forwards_to(listener: dict[str, Any]) -> str:
    for action in listener.get("DefaultActions") or []:
        if action.get("Type") == "forward" and action.get("TargetGroupArn"):
            return str(action["TargetGroupArn"])
    return ""


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
