"""The demo scenarios, asserted against the real swarm, and the operators' timeline.

Each scenario drives the stack the way AWS and an operator would (desired capacity, EC2 calls, AWS
events) and then checks the swarm itself with ``docker`` on the nodes. Every wait is bounded.
The scenarios by name are in ``registry``; ``join`` and ``leave`` hold them, ``swarm`` and ``watcher``
the helpers they share, ``report`` their checks and what an operator sees afterwards.
"""

from lab.scenarios.registry import SCENARIOS, run
from lab.scenarios.report import Check, NotImplementedScenario, Report, diagnostics, timeline
from lab.scenarios.swarm import node_ls

__all__ = [
    "SCENARIOS",
    "Check",
    "NotImplementedScenario",
    "Report",
    "diagnostics",
    "node_ls",
    "run",
    "timeline",
]
