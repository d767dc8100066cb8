"""The lab bridge keeps one address while nodes come and go.

A Linux bridge whose address was never set takes the lowest address of its ports, so it changed each
time a node's veth was added or removed; the nodes' cached neighbour entry for the gateway (where the
embedded AWS endpoint listens) then pointed at nothing and their AWS calls stalled (SYNs lost) until
the entry was re-resolved: the exit scenarios' remove-node and describe-swarm hung for 10-60 s."""

from __future__ import annotations

from pathlib import Path

from lab.nodes import LabNetwork, _bridge_mac
from tests.lab.conftest import LAB_BRIDGE, LAB_PREFIX, LAB_SUBNET


def _address(bridge: str) -> str:
    return Path(f"/sys/class/net/{bridge}/address").read_text().strip()


def test_bridge_address_is_fixed_while_nodes_come_and_go(lab_machine: None) -> None:
    net = LabNetwork(subnet=LAB_SUBNET, bridge=LAB_BRIDGE, prefix=LAB_PREFIX)
    with net:
        fixed = _address(LAB_BRIDGE)
        assert fixed == _bridge_mac(LAB_PREFIX, LAB_BRIDGE)
        assert int(fixed.split(":")[0], 16) & 0x03 == 0x02  # locally administered, unicast
        hosts = [str(h) for h in list(net.subnet.hosts())[1:6]]
        for i, ip in enumerate(hosts):
            net.add_node(f"mac{i}", ip)
            assert _address(LAB_BRIDGE) == fixed
        for i in range(len(hosts)):
            net.remove_node(f"mac{i}")
            assert _address(LAB_BRIDGE) == fixed
