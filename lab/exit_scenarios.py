"""Lab scenarios of the exit flow (issue 5): scale-in, crash, spot, manager-rollover, alarm."""

from __future__ import annotations

from lab.cluster import Lab
from lab.scenarios import NotImplementedScenario, Report


def scale_in(lab: Lab, r: Report, scale: float) -> None:
    raise NotImplementedScenario("not implemented")


def crash(lab: Lab, r: Report, scale: float) -> None:
    raise NotImplementedScenario("not implemented")


def spot(lab: Lab, r: Report, scale: float) -> None:
    raise NotImplementedScenario("not implemented")


def manager_rollover(lab: Lab, r: Report, scale: float) -> None:
    raise NotImplementedScenario("not implemented")


def alarm(lab: Lab, r: Report, scale: float) -> None:
    raise NotImplementedScenario("not implemented")
