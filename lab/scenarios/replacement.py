"""Auto Scaling replaces managers, and the cluster keeps its fault tolerance meanwhile.

``managers-replaced``: two of the three managers are terminated at once without decrementing the
desired capacity (TerminateInstanceInAutoScalingGroup, as an operator or a health replacement does),
so Auto Scaling launches two replacements while the old ones wait in Terminating:Wait. The leader's
``docker node ls`` is sampled every few tenths of a second from the terminations until the swarm is
whole again: the reachable managers must never drop below the majority of three plus one (3), the
terminate actions must complete by the control plane, each old node already out of the swarm.
"""

from __future__ import annotations

import itertools
import time

from lab.cluster import Lab, settle
from lab.scenarios.report import Report
from lab.scenarios.swarm import back_to_size, form_swarm, node_id_of, published, terminate_action
from lab.scenarios.watcher import Sample, Watcher

SPARE = 1  # reachable managers beyond the majority the cluster keeps while managers are replaced


def _majority(managers: int) -> int:
    return managers // 2 + 1


def _margin(sample: Sample) -> int:
    managers, reachable = sample.managers()
    return reachable - _majority(managers)


def _seconds_below(samples: list[Sample], reachable: int) -> float:
    """How long the samples show fewer than ``reachable`` managers reachable (to the next sample)."""
    pairs = itertools.pairwise(samples)
    return sum(later.at - sample.at for sample, later in pairs if sample.managers()[1] < reachable)


def managers_replaced(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    assert lab.autoscaling is not None
    group = lab.group_name("manager")
    old = sorted(lab.instances("manager"))[:2]
    node_ids = {iid: node_id_of(lab, iid) for iid in old}
    launched = lab.autoscaling.launched  # (group, instance id, when), appended as Auto Scaling launches
    launched_before = {iid for name, iid, _ in launched if name == group}
    asg = lab.client("autoscaling")
    with Watcher(lab, every=0.2) as watcher:
        started = time.time()
        for iid in old:
            asg.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=False)
        new = [iid for name, iid, _ in launched if name == group and iid not in launched_before]
        desired = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        r.check(
            "Auto Scaling launched two replacements at once, desired capacity unchanged",
            len(new) == 2 and desired["DesiredCapacity"] == 3,
            f"new {new}, desired {desired['DesiredCapacity']}, {lab.autoscaling.snapshot().get(group)}",
        )
        r.check(
            "the two old managers wait in Terminating:Wait",
            sorted(lab.instances("manager", ("Terminating:Wait",))) == old,
            str(lab.autoscaling.snapshot().get(group)),
        )

        def replaced() -> bool:
            last = watcher.samples[-1]
            return (
                all(terminate_action(lab, iid) is not None for iid in old)
                and not any(node in last.nodes for node in node_ids.values())
                and last.managers() == (3, 3)
                and not set(old) & set(lab.instances("manager"))
                and len(lab.instances("manager")) == 3
            )

        done = settle(replaced, 240 * scale, every=0.5)
        ended = time.time()
        watcher.sample()
    r.check(
        "both old managers demoted, removed and terminated; three managers reachable again",
        done,
        f"{watcher.samples[-1].managers()} {lab.autoscaling.snapshot().get(group)}",
    )
    answered = watcher.answered(started, ended)
    fewest = min(answered, key=lambda sample: (sample.managers()[1], sample.at), default=None)
    tightest = min(answered, key=_margin, default=None)
    seen = sorted({sample.managers() for sample in answered})
    measured = (
        f"fewest reachable {fewest.managers()[1]} (at +{fewest.at - started:.1f}s)" if fewest else "no sample"
    )
    below = _seconds_below(answered, _majority(3) + SPARE)
    measured += (
        f", {below:.1f}s below {_majority(3) + SPARE}; replaced in {ended - started:.1f}s;"
        f" {len(answered)} samples of the leader's `docker node ls`; (managers, reachable) seen: {seen}"
    )
    r.notes.append(measured)
    r.check(
        f"every sample: reachable managers >= majority of three + {SPARE} (one more failure tolerated)",
        answered and fewest is not None and fewest.managers()[1] >= _majority(3) + SPARE,
        measured,
    )
    r.check(
        f"every sample: reachable managers >= majority of the configuration + {SPARE}",
        tightest is not None and _margin(tightest) >= SPARE,
        f"tightest {tightest.managers() if tightest else None}",
    )
    for iid in old:
        action = terminate_action(lab, iid)
        r.check(
            f"{iid}: CONTINUE by the control plane, its node already out of `docker node ls`",
            action is not None
            and action.how == "complete"
            and action.result == "CONTINUE"
            and watcher.listed_at_completion(iid, node_ids[iid]) is False,
            f"{action}; listed at CONTINUE: {watcher.listed_at_completion(iid, node_ids[iid])}",
        )
    joined = sorted(at - started for iid in new for at in published(lab, iid, "Node Joined"))
    demoted = sorted(at - started for iid in old for at in published(lab, iid, "Manager Demoted"))
    r.check(
        "each old manager was demoted only after a replacement had joined",
        len(joined) == len(demoted) == 2
        and all(gone > came for gone, came in zip(demoted, joined, strict=True)),
        f"joined +{[round(at, 1) for at in joined]}s, demoted +{[round(at, 1) for at in demoted]}s",
    )
    r.check("no Quorum At Risk published", not published(lab, None, "Quorum At Risk"))
    leaderless = watcher.longest_leaderless(started, ended)
    r.check(
        "never without a leader for long (only an election after a leader's demotion)",
        leaderless <= 10,
        f"longest stretch without a leader answering: {leaderless:.1f}s",
    )
    if r.ok:
        back_to_size(lab, r, 3, 3, 60 * scale, old)
