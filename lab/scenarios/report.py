"""What a scenario reports (its checks), and what an operator sees of a lab run afterwards."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from infra import event_schemas
from lab.cluster import Lab

log = logging.getLogger("lab.scenarios")
SCHEMA_CHECK = "every event on the operators' timeline matches its schema"


class NotImplementedScenario(Exception):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    scenario: str
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: Any, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        (log.info if ok else log.error)("%s: %s %s", "PASS" if ok else "FAIL", name, detail)
        return bool(ok)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)


# -- what an operator sees ------------------------------------------------------------------------------
def timeline(lab: Lab) -> str:
    lines = []
    for at, e in lab.operator_events():
        d = e.get("detail") or {}
        who = " ".join(
            x
            for x in (
                f"stack={d['stack']}" if d.get("stack") else None,
                d.get("instanceId"),
                f"({d['role']})" if d.get("role") else None,
                f"node={d['nodeId'][:12]}" if d.get("nodeId") else None,
            )
            if x
        )
        reason = f" — {d['reason']}" if d.get("reason") else ""
        lines.append(f"  +{at - lab.started:7.1f}s  {e.get('detail-type', '?'):<22} {who}{reason}")
    return "\n".join(lines) if lines else "  (no swarmkeeper events on the operators' bus)"


def check_timeline_schemas(lab: Lab, report: Report) -> None:
    """Every event on the operators' timeline matches the schema of its detail-type (schemas/)."""
    schemas = event_schemas.load()
    problems = [
        f"+{at - lab.started:.1f}s {problem}"
        for at, event in lab.operator_events()
        for problem in event_schemas.violations(event, schemas)
    ]
    report.check(SCHEMA_CHECK, not problems, "; ".join(problems[:5]))


def diagnostics(lab: Lab) -> str:
    out = []
    if lab.lambdas:
        failed = [r for r in lab.lambdas.records if not r.ok]
        out.append(
            f"function invocations: {len(lab.lambdas.records)}, failed: {len(failed)}, "
            f"dead-lettered: {len(lab.lambdas.dead_lettered)}"
        )
        for rec in failed[-5:]:
            out.append(f"  {rec.function} [{rec.detail_type}] attempt {rec.attempt}: {rec.error}")
    if lab.agents:
        out.append(f"run commands executed: {len(lab.agents.history)}")
        for h in [h for h in lab.agents.history if h["exit_code"] != 0][-5:]:
            out.append(
                f"  {h['document']} on {h['instance_id']}: exit {h['exit_code']}: "
                f"{h['stderr'][-300:].strip()}"
            )
    if lab.autoscaling:
        out.append(
            f"lifecycle actions pending: {len(lab.autoscaling.pending)}, "
            f"completed: {len(lab.autoscaling.completed)} "
            f"({sum(1 for c in lab.autoscaling.completed if c.how == 'timeout')} by heartbeat timeout)"
        )
    if lab.fleet and lab.fleet.errors:
        out.append("node errors: " + "; ".join(lab.fleet.errors[-5:]))
    if lab.router and lab.router.unmatched:
        kinds = sorted({e.get("detail-type", "?") for e in lab.router.unmatched})
        out.append(f"AWS events no rule matched: {kinds}")
    return "\n".join(out)
