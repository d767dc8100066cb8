"""The real-node harness itself: isolation of lab nodes, and nothing left behind after teardown."""

from __future__ import annotations

import subprocess

import pytest

from lab.nodes import LabNetwork, leftovers, load_image

pytestmark = pytest.mark.lab

PREFIX = "skh"  # own names, so a lab running elsewhere on this machine is never touched
SUBNET = "10.99.8.0/24"


def test_node_has_no_route_off_the_lab_subnet():
    # Given a lab node (only its on-link subnet; nothing is sent by `ip route get`)
    with LabNetwork(subnet=SUBNET, bridge=f"{PREFIX}br0", prefix=PREFIX) as net:
        node = net.add_node("ip-10-99-8-11.ec2.internal", "10.99.8.11")

        # When it asks for a route to the internet and to this machine's own network
        internet = node.run(["ip", "route", "get", "1.1.1.1"])
        host_net = node.run(["ip", "route", "get", "192.0.2.1"])
        bridge = node.run(["ip", "route", "get", net.gateway_ip])
        routes = node.run(["ip", "-4", "route", "show"])

        # Then there is none; only the lab subnet (the embedded AWS endpoint on the bridge) is reachable
        for answer in (internet, host_net):
            assert answer.returncode != 0
            assert "Network is unreachable" in answer.stderr
        assert bridge.returncode == 0, bridge.stderr
        assert "default" not in routes.stdout
        assert routes.stdout.split()[0] == SUBNET
        # and the bridge forwards to no other interface
        rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
        assert f"-A FORWARD -i {net.bridge} ! -o {net.bridge}" in rules
        assert "-j DROP" in rules
        # and a lab with a shorter prefix ("sk") never claims this lab's things as its own
        assert not [item for item in leftovers("sk") if PREFIX in item]
        assert any(PREFIX in item for item in leftovers(PREFIX))
    assert leftovers(PREFIX) == []


def test_nothing_is_left_after_teardown_even_after_a_crash():
    # Given two nodes running containers: one whose dockerd crashes (SIGKILL), one stopped normally
    net = LabNetwork(subnet=SUBNET, bridge=f"{PREFIX}br0", prefix=PREFIX)
    try:
        net.up()
        crashed = net.add_node("ip-10-99-8-21.ec2.internal", "10.99.8.21")
        normal = net.add_node("ip-10-99-8-22.ec2.internal", "10.99.8.22")
        for node in (crashed, normal):
            node.start_dockerd()
            load_image(node)
            run = node.docker("run", "-d", "--stop-timeout", "1", "swarmkeeper/busybox:lab", "sleep", "600")
            assert run.returncode == 0, run.stderr
        assert normal.run(["hostname"]).stdout.strip() == "ip-10-99-8-22.ec2.internal"
        assert any("process" in item for item in leftovers(PREFIX))  # it sees a running lab
        crashed.kill_dockerd()
    finally:
        # When the harness is torn down
        net.down()

    # Then nothing of the lab remains: processes, mounts, namespaces, links, rules, cgroups, dirs
    assert leftovers(PREFIX) == []
    assert net.nodes == {}
    net.down()  # idempotent
