"""VPC (new or existing), private subnets and the Swarm security groups.

Only Swarm's own ports are open, and only among this cluster's nodes; nothing from the internet, no SSH
(operators use SSM Session Manager). Outbound is open: nodes pull images from public registries.
"""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.settings import NEW_VPC_CIDR, ClusterSettings
from swarmkeeper.domain.names import ClusterNames

SWARM_MANAGEMENT = ec2.Port.tcp(2377)  # raft + cluster management, managers only
GOSSIP_TCP = ec2.Port.tcp(7946)  # node discovery / gossip
GOSSIP_UDP = ec2.Port.udp(7946)
VXLAN = ec2.Port.udp(4789)  # overlay network data plane
ESP = ec2.Port(protocol=ec2.Protocol.ESP, string_representation="ESP (IP protocol 50)")  # encrypted overlays


class Network(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames) -> None:
        super().__init__(scope, id)

        if settings.uses_existing_vpc:
            # Existing VPC: no lookup (synth stays offline); the given subnets must be private ones that
            # reach SSM and the registries (NAT or endpoints) -- the owner of that VPC provides that.
            self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=settings.vpc_id,
                availability_zones=[Fn.select(i, Fn.get_azs()) for i in range(len(settings.subnet_ids))],
                private_subnet_ids=list(settings.subnet_ids),
            )
            subnets = [
                ec2.Subnet.from_subnet_id(self, f"Subnet{i}", subnet_id)
                for i, subnet_id in enumerate(settings.subnet_ids)
            ]
            self.node_subnets = ec2.SubnetSelection(subnets=subnets)
        else:
            flow_log_group = logs.LogGroup(
                self,
                "FlowLogs",
                log_group_name=f"/swarmkeeper/{settings.cluster_name}/vpc-flow-logs",
                retention=settings.log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.vpc = ec2.Vpc(
                self,
                "Vpc",
                vpc_name=names.prefix,
                ip_addresses=ec2.IpAddresses.cidr(NEW_VPC_CIDR),
                max_azs=3,
                nat_gateways=settings.nat_gateways,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                    ec2.SubnetConfiguration(
                        name="nodes", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                    ),
                ],
                gateway_endpoints={
                    # S3 without the NAT: SSM agent updates, Run Command output, AL2023 dnf repositories.
                    "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                },
                flow_logs={
                    "FlowLogs": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
            self.node_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        # Every node (manager or worker) carries node_sg; managers also carry manager_sg.
        self.node_sg = ec2.SecurityGroup(
            self,
            "NodeSecurityGroup",
            vpc=self.vpc,
            security_group_name=f"{names.prefix}-nodes",
            description=f"swarmkeeper {settings.cluster_name}: Swarm gossip and overlay among cluster nodes",
            allow_all_outbound=True,
        )
        for port, what in (
            (GOSSIP_TCP, "Swarm gossip (tcp)"),
            (GOSSIP_UDP, "Swarm gossip (udp)"),
            (VXLAN, "Swarm overlay VXLAN"),
            (ESP, "Swarm encrypted overlay (ESP)"),
        ):
            self.node_sg.add_ingress_rule(self.node_sg, port, f"{what} from cluster nodes")

        self.manager_sg = ec2.SecurityGroup(
            self,
            "ManagerSecurityGroup",
            vpc=self.vpc,
            security_group_name=f"{names.prefix}-managers",
            description=f"swarmkeeper {settings.cluster_name}: Swarm management port on the managers",
            allow_all_outbound=True,
        )
        self.manager_sg.add_ingress_rule(
            self.node_sg, SWARM_MANAGEMENT, "Swarm management from cluster nodes"
        )
