"""The embedded local lab: moto stands in for AWS, and each simulated EC2 instance is a real ``dockerd``
in its own network namespace on this machine (see ``lab.nodes``). Needs root. Traffic never leaves the
machine: lab namespaces have no default route and the lab bridge forwards to no other interface.
"""
