"""Every scenario by the name ``python -m lab --scenario NAME`` takes, in the order ``all`` runs them.

A scenario is a function ``(lab, report, scale)``: it drives the lab, records checks on the report and
multiplies each of its waits by ``scale``. After it, whatever it did, its report also checks every event
on the operators' timeline against its schema. Adding one is a function in a module of this package (its
helpers from ``lab.scenarios.swarm`` and ``lab.scenarios.watcher``), its import and an entry here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lab.cluster import Lab
from lab.scenarios.ingress import ingress
from lab.scenarios.join import bootstrap, burst, rotate
from lab.scenarios.leave import alarm, crash, manager_rollover, scale_in, spot
from lab.scenarios.overlap import terminate_joining
from lab.scenarios.replacement import managers_replaced
from lab.scenarios.report import NotImplementedScenario, Report, check_timeline_schemas
from lab.scenarios.seed import seed

log = logging.getLogger("lab.scenarios")

Scenario = Callable[[Lab, Report, float], None]

SCENARIOS: dict[str, Scenario] = {
    "bootstrap": bootstrap,
    "burst": burst,
    "scale-in": scale_in,
    "crash": crash,
    "spot": spot,
    "terminate-joining": terminate_joining,
    "manager-rollover": manager_rollover,
    "managers-replaced": managers_replaced,
    "rotate": rotate,
    "alarm": alarm,
    "seed": seed,
    "ingress": ingress,
}


def run(lab: Lab, name: str, scale: float = 1.0) -> Report:
    r = Report(name)
    started = time.monotonic()
    try:
        SCENARIOS[name](lab, r, scale)
    except NotImplementedScenario:
        r.error = "not implemented"
    except Exception as e:
        log.exception("scenario %s", name)
        r.error = f"{type(e).__name__}: {e}"
    check_timeline_schemas(lab, r)
    r.seconds = time.monotonic() - started
    return r
