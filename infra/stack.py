"""One stack per cluster: `swarmkeeper-<clusterName>`."""

from __future__ import annotations

from aws_cdk import Stack, Tags
from constructs import Construct

from infra.compute import Compute
from infra.control_plane import ControlPlane
from infra.dashboard import OperatorsDashboard
from infra.load_balancer import LoadBalancer
from infra.nag import acknowledge
from infra.network import Network
from infra.observability import Alarms, EventSchemaRegistry, OperatorsBus
from infra.settings import ClusterSettings
from infra.ssm_documents import Documents
from infra.stacks import StacksBucket
from infra.state import State
from swarmkeeper.domain.names import ClusterNames


class SwarmkeeperStack(Stack):
    def __init__(self, scope: Construct, *, settings: ClusterSettings, **kwargs) -> None:
        names = ClusterNames(settings.cluster_name)
        super().__init__(
            scope,
            names.stack,
            stack_name=names.stack,
            description=f"swarmkeeper: Docker Swarm cluster {settings.cluster_name} and its control plane",
            **kwargs,
        )
        self.settings = settings
        self.names = names
        Tags.of(self).add("swarmkeeper:cluster", settings.cluster_name)

        self.network = Network(self, "Network", settings=settings, names=names)
        self.load_balancer = LoadBalancer(
            self, "LoadBalancer", settings=settings, names=names, network=self.network
        )
        self.state = State(self, "State", settings=settings, names=names)
        self.documents = Documents(self, "Documents", names=names)
        self.stacks = StacksBucket(self, "Stacks", settings=settings, names=names)
        self.operators = OperatorsBus(self, "Operators", settings=settings, names=names)
        self.event_schemas = EventSchemaRegistry(self, "EventSchemas", settings=settings, names=names)
        self.control_plane = ControlPlane(
            self,
            "ControlPlane",
            settings=settings,
            names=names,
            state=self.state,
            bus=self.operators.bus,
            stacks=self.stacks,
            load_balancer=self.load_balancer,
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            settings=settings,
            names=names,
            dead_letter_queue=self.state.dead_letter_queue,
            functions=self.control_plane.functions,
        )
        self.compute = Compute(
            self,
            "Compute",
            settings=settings,
            names=names,
            network=self.network,
            state=self.state,
            load_balancer=self.load_balancer,
        )
        self.stacks.grant_managers(self.compute.manager_role, self.state.key)
        # The groups' first instances already wait on the launch hook: the rules, the functions and the
        # documents that bootstrap them must exist before the groups do.
        for group in (self.compute.manager_group, self.compute.worker_group):
            group.node.add_dependency(self.control_plane)
            group.node.add_dependency(self.documents)
        # Last: the dashboard shows every alarm the stack holds by now.
        self.dashboard = OperatorsDashboard(
            self,
            "Dashboard",
            settings=settings,
            names=names,
            functions=self.control_plane.functions,
            step_queue=self.state.step_queue,
            dead_letter_queue=self.state.dead_letter_queue,
        )

        acknowledge(self)
