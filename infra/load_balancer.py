"""The cluster's Network Load Balancer and its two security groups; the listeners are the control plane's.

The stack creates the load balancer with no listener and no target group: for every port the swarm
publishes, the control plane (``swarmkeeper.flows.listeners``) creates a target group attached to the
workers' Auto Scaling group (so Auto Scaling registers each new worker and deregisters a leaving one
before its terminate hook fires), a listener, and the rules below for that port only.

- ``security_group`` (on the load balancer): inbound from ``client_cidr`` on the listener ports only
  (rules the control plane adds and removes); outbound only to the targets' group.
- ``target_security_group`` (on every worker): inbound from the load balancer's group on the
  published ports only (the control plane's rules again), nothing else; it adds no outbound rule.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from infra.network import Network
from infra.settings import ClusterSettings
from swarmkeeper.domain.names import ClusterNames

TARGET_PORTS = ec2.Port.tcp_range(1, 65535)


class LoadBalancer(Construct):
    def __init__(
        self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames, network: Network
    ) -> None:
        super().__init__(scope, id)
        self.client_cidr = settings.client_cidr
        self.vpc_id = network.vpc.vpc_id

        def group(id: str, name: str, what: str) -> ec2.SecurityGroup:
            return ec2.SecurityGroup(
                self,
                id,
                vpc=network.vpc,
                security_group_name=f"{names.prefix}-{name}",
                description=f"swarmkeeper {settings.cluster_name}: {what}",
                allow_all_outbound=False,
            )

        self.security_group = group(
            "SecurityGroup", "load-balancer", "load balancer, listener ports from clients"
        )
        self.target_security_group = group(
            "TargetSecurityGroup", "load-balancer-targets", "published ports from the load balancer"
        )
        # The targets' group admits only the published ports, so this is no wider than they are.
        self.security_group.add_egress_rule(
            self.target_security_group, TARGET_PORTS, "To the workers' published ports (health checks too)"
        )

        if settings.uses_existing_vpc and settings.internet_facing:
            subnets = ec2.SubnetSelection(
                subnets=[
                    ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet_id)
                    for index, subnet_id in enumerate(settings.load_balancer_subnet_ids)
                ]
            )
        elif settings.internet_facing:
            subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        else:
            subnets = network.node_subnets
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "LoadBalancer",
            load_balancer_name=names.load_balancer,
            vpc=network.vpc,
            vpc_subnets=subnets,
            internet_facing=settings.internet_facing,
            security_groups=[self.security_group],
            cross_zone_enabled=True,
        )
