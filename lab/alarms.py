"""CloudWatch alarms, evaluated: moto stores alarms but never evaluates them.

Metrics reach the lab the ways they reach CloudWatch: PutMetricData on the embedded region (moto's
backend is wrapped so every datum is also seen here), and Embedded Metric Format lines in the
functions' logs (what Powertools Metrics writes; CloudWatch Logs turns them into metrics — the lab
parses the workers' output and puts the values into moto too). The lab also publishes the AWS
metrics the stack's alarms may watch: AWS/SQS queue depth and AWS/Lambda Errors/Invocations.

Each template alarm is evaluated every ``tick`` seconds over its periods scaled by ``period_scale``
(a 60 s period becomes 60 * scale seconds); a state change is stored in moto (SetAlarmState) and
goes out as the documented "CloudWatch Alarm State Change" event.
"""

from __future__ import annotations

import json
import logging
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab import patches

log = logging.getLogger("lab.alarms")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass
class AlarmKnobs:
    period_scale: float = 0.05  # 60 s periods evaluate over 3 s
    tick: float = 0.5


@dataclass
class Datum:
    at: float  # time.time()
    namespace: str
    name: str
    dims: dict[str, str]
    value: float


@dataclass
class AlarmState:
    spec: Any
    value: str = "INSUFFICIENT_DATA"
    reason: str = "Unchecked: Initial alarm creation"
    since: str = field(default_factory=lambda: _ts())
    history: list[tuple[float, str]] = field(default_factory=list)


def _ts() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def parse_emf(line: str) -> list[Datum]:
    """Datums of one Embedded Metric Format log line (``_aws.CloudWatchMetrics``); [] for other lines."""
    line = line.strip()
    if not line.startswith("{") or "CloudWatchMetrics" not in line:
        return []
    try:
        doc = json.loads(line)
    except ValueError:
        return []
    aws = doc.get("_aws") or {}
    at = float(aws.get("Timestamp", time.time() * 1000)) / 1000
    out = []
    for directive in aws.get("CloudWatchMetrics") or []:
        ns = directive.get("Namespace", "")
        dim_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            name = metric.get("Name")
            raw = doc.get(name)
            values = raw if isinstance(raw, list) else [raw]
            for dset in dim_sets:
                dims = {d: str(doc.get(d)) for d in dset if d in doc}
                for v in values:
                    if isinstance(v, int | float):
                        out.append(Datum(at, ns, name, dims, float(v)))
    return out


class Alarms:
    def __init__(
        self,
        region: Any,
        factory: Any,
        emit: Callable[[dict], None],
        specs: list[Any],
        knobs: AlarmKnobs | None = None,
    ):
        self.region = region
        self.factory = factory
        self.emit = emit
        self.knobs = knobs or AlarmKnobs()
        self.data: list[Datum] = []
        self.states = {s.name: AlarmState(s) for s in specs}
        self.transitions: list[tuple[float, str, str, str]] = []  # (time, alarm, old, new)
        self.sources: list[Callable[[], list[Datum]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-alarms", daemon=True)
        self._in_put = threading.local()

    def install(self) -> None:
        from moto.cloudwatch.models import CloudWatchBackend

        original = CloudWatchBackend.put_metric_data
        alarms = self

        def put_metric_data(backend: Any, namespace: str, metric_data: list[dict]) -> None:
            original(backend, namespace, metric_data)
            now = time.time()
            for m in metric_data:
                dims = {d["Name"]: str(d["Value"]) for d in m.get("Dimensions") or []}
                values = m.get("Values") or ([m["Value"]] if "Value" in m else [])
                for v in values:
                    alarms.record(Datum(now, namespace, m["MetricName"], dims, float(v)))

        patches.setattr(CloudWatchBackend, "put_metric_data", put_metric_data)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def record(self, datum: Datum) -> None:
        with self._lock:
            self.data.append(datum)
            if len(self.data) > 50_000:
                del self.data[:10_000]

    def on_log_line(self, _spec: Any, line: str) -> None:
        """A function's log line: EMF metrics go into CloudWatch (moto) like CloudWatch Logs does."""
        for d in parse_emf(line):
            try:
                self.region.backend("cloudwatch").put_metric_data(
                    d.namespace,
                    [
                        {
                            "MetricName": d.name,
                            "Value": d.value,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in d.dims.items()],
                        }
                    ],
                )
            except Exception:
                self.record(d)

    # -- evaluation -------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.knobs.tick):
            for source in self.sources:
                try:
                    for d in source():
                        self.region.backend("cloudwatch").put_metric_data(
                            d.namespace,
                            [
                                {
                                    "MetricName": d.name,
                                    "Value": d.value,
                                    "Dimensions": [{"Name": k, "Value": v} for k, v in d.dims.items()],
                                }
                            ],
                        )
                except Exception:
                    log.debug("metric source failed", exc_info=True)
            try:
                self.evaluate()
            except Exception:
                log.exception("alarm evaluation")

    def _values(self, ns: str, name: str, dims: dict[str, str], start: float, end: float) -> list[float]:
        with self._lock:
            return [
                d.value
                for d in self.data
                if d.namespace == ns and d.name == name and d.dims == dims and start <= d.at < end
            ]

    @staticmethod
    def _stat(values: list[float], stat: str) -> float:
        if stat in ("Maximum", "Max"):
            return max(values)
        if stat in ("Minimum", "Min"):
            return min(values)
        if stat == "Sum":
            return sum(values)
        if stat == "SampleCount":
            return float(len(values))
        return sum(values) / len(values)

    def evaluate(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for st in self.states.values():
            p = st.spec.props
            if "MetricName" not in p:
                continue  # metric math alarms: not evaluated in the lab
            period = float(p.get("Period", 60)) * self.knobs.period_scale
            n = int(p.get("EvaluationPeriods", 1))
            m = int(p.get("DatapointsToAlarm", n))
            dims = {d["Name"]: str(d["Value"]) for d in p.get("Dimensions") or []}
            cmp = _OPS[p["ComparisonOperator"]]
            threshold = float(p["Threshold"])
            breaching = 0
            present = 0
            for i in range(n):
                end = now - i * period
                vals = self._values(p["Namespace"], p["MetricName"], dims, end - period, end)
                if vals:
                    present += 1
                    if cmp(self._stat(vals, p.get("Statistic", "Average")), threshold):
                        breaching += 1
            missing = p.get("TreatMissingData", "missing")
            if present == 0:
                new = {"breaching": "ALARM", "notBreaching": "OK", "ignore": st.value}.get(
                    missing, "INSUFFICIENT_DATA"
                )
            else:
                if missing == "breaching":
                    breaching += n - present
                new = "ALARM" if breaching >= m else "OK"
            if new != st.value:
                self._transition(st, new, f"{breaching} of {n} datapoints breaching {threshold}")

    def _transition(self, st: AlarmState, new: str, reason: str) -> None:
        previous = {"value": st.value, "reason": st.reason, "timestamp": st.since}
        st.value, st.reason, st.since = new, f"Threshold Crossed: {reason}", _ts()
        st.history.append((time.time(), new))
        self.transitions.append((time.time(), st.spec.name, previous["value"], new))
        log.info("alarm %s: %s -> %s", st.spec.name, previous["value"], new)
        try:
            self.region.backend("cloudwatch").set_alarm_state(st.spec.name, st.reason, None, new)
        except Exception:
            log.debug("set_alarm_state", exc_info=True)
        p = st.spec.props
        config: dict[str, Any] = {"description": p.get("AlarmDescription", ""), "metrics": []}
        if "MetricName" in p:
            config["metrics"].append(
                {
                    "id": "m1",
                    "metricStat": {
                        "metric": {
                            "namespace": p["Namespace"],
                            "name": p["MetricName"],
                            "dimensions": {d["Name"]: str(d["Value"]) for d in p.get("Dimensions") or []},
                        },
                        "period": int(p.get("Period", 60)),
                        "stat": p.get("Statistic", "Average"),
                    },
                    "returnData": True,
                }
            )
        self.emit(
            self.factory.alarm_state_change(
                st.spec.name,
                st.spec.arn,
                {"value": new, "reason": st.reason, "timestamp": st.since},
                previous,
                config,
            )
        )
