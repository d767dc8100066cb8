"""``with Lab(config) as lab:`` — the whole embedded lab, set up from the template, always torn down.

Order: bridge and isolation rules (lab.nodes) → embedded region on loopback and on the bridge
address → moto patched (Auto Scaling lifecycle, Run Command, EC2 instance ⇄ nodes, metrics,
EventBridge capture) → the stack provisioned from the template → warm function workers → the
EventBridge router, SQS pollers, Auto Scaling clock, alarm evaluation and schedules.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.event_schemas import delivered
from lab import patches, s3_events
from lab.agent import AgentKnobs, SsmAgents
from lab.alarms import AlarmKnobs, Alarms, Datum
from lab.autoscaling import AutoScaling, AutoScalingKnobs
from lab.events import EventFactory, Knobs, Router, RuleSpec
from lab.instances import Fleet, FleetKnobs
from lab.invoke import Invoke, InvokeEndpoint
from lab.lambdas import FunctionSpec, LambdaKnobs, LambdaService, QueuePoller
from lab.provision import Provisioned, Provisioner
from lab.region import Region
from lab.s3_events import S3Events
from lab.template import Template, find_template

log = logging.getLogger("lab")
LOAD_BALANCER_HOST = 250  # the load balancer's lab address: this host number of the lab subnet
REPO = Path(__file__).resolve().parent.parent


@dataclass
class LabConfig:
    cdk_out: Path = REPO / "cdk.out"
    template: Path | None = None
    cluster: str | None = None
    subnet: str = "10.99.0.0/24"
    bridge: str = "skbr0"
    prefix: str = "sk"
    log_dir: Path = REPO / "lab-run"
    schedule_scale: float = 1.0  # 0: schedules fire only on demand
    events: Knobs = field(default_factory=Knobs)
    lambdas: LambdaKnobs = field(default_factory=LambdaKnobs)
    agent: AgentKnobs = field(default_factory=AgentKnobs)
    autoscaling: AutoScalingKnobs = field(default_factory=AutoScalingKnobs)
    alarms: AlarmKnobs = field(default_factory=AlarmKnobs)
    fleet: FleetKnobs = field(default_factory=FleetKnobs)
    # Added to (or overriding) every function's environment from the template, e.g.
    # {"RECONCILE_DOWN_GRACE_SECONDS": "2"}; Lab.set_function_env changes it while the lab runs.
    function_env: dict[str, str] = field(default_factory=dict)
    deregistration_scale: float = 0.1  # the lab's time for the target groups' deregistration delays


_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")


def schedule_seconds(expression: str | None) -> float | None:
    m = _RATE.fullmatch((expression or "").strip())
    if not m:
        return None  # cron(...) schedules fire only on demand in the lab
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit


class Lab:
    def __init__(self, config: LabConfig | None = None, network_factory: Any = None, load_image: Any = None):
        self.config = config or LabConfig()
        self._network_factory = network_factory
        self._load_image = load_image
        self.network: Any = None
        self.region: Region | None = None
        self.template: Template | None = None
        self.stack: Provisioned | None = None
        self.router: Router | None = None
        self.lambdas: LambdaService | None = None
        self.invoke: InvokeEndpoint | None = None  # Lambda's Invoke API (AWS_ENDPOINT_URL_LAMBDA)
        self.autoscaling: AutoScaling | None = None
        self.agents: SsmAgents | None = None
        self.fleet: Fleet | None = None
        self.alarms: Alarms | None = None
        self.forwarder: Any = None  # lab.forwarder.Forwarder when the stack has a load balancer
        self.load_balancer_address = ""
        self.factory: EventFactory | None = None
        self.pollers: list[QueuePoller] = []
        self.started = time.time()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, Any] = {}
        self._lambda_seen = 0

    # -- set-up ---------------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            assert self.region is not None
            self._clients[service] = self.region.client(service)
        return self._clients[service]

    def setup(self) -> None:
        cfg = self.config
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.template or find_template(cfg.cdk_out, cfg.cluster)
        if self._network_factory is None:
            from lab.nodes import LabNetwork, load_image

            self._network_factory = LabNetwork
            self._load_image = self._load_image or load_image
        self.network = self._network_factory(subnet=cfg.subnet, bridge=cfg.bridge, prefix=cfg.prefix)
        self.network.up()
        self.region = Region(self.network.gateway_ip).start()
        self.factory = EventFactory(self.region.name, self.region.account)
        self.router = Router(self._invoke_target, cfg.events)
        emit = self.router.put
        self.autoscaling = AutoScaling(self.region, self.factory, emit, cfg.autoscaling)
        self.agents = SsmAgents(self.region, self.factory, emit, self._script_env, self._s3_put, cfg.agent)
        self.fleet = Fleet(
            self.region, self.network, self.agents, self.factory, emit, self._load_image, cfg.fleet
        )
        self.autoscaling.install()
        self.agents.install()
        self.fleet.install()
        self._install_bus_capture()
        s3_events.install(lambda event: self.router and self.router.put(event), S3Events(self.factory))
        self.template = Template.load(path, region=self.region.name, account=self.region.account)
        cdk_out = (
            path.parent if (path.parent / "manifest.json").exists() or path.parent == cfg.cdk_out else None
        )
        self.stack = Provisioner(
            self.template, self.region, subnet_cidr=cfg.subnet, repo=REPO, cdk_out=cdk_out
        ).run()
        for w in self.stack.warnings:
            log.warning("template: %s", w)
        self.agents.associations = self.stack.associations
        self.router.captured_buses.update(self.stack.buses)
        for rule in self.stack.rules:
            self.router.add_rule(rule)
        self._play_load_balancer()
        self.alarms = Alarms(self.region, self.factory, emit, self.stack.alarms, cfg.alarms)
        self.alarms.install()
        self.alarms.sources.append(self._aws_metrics)
        for spec in self.stack.functions.values():
            spec.environment.update(cfg.function_env)
        self.lambdas = LambdaService(
            self.stack.functions,
            self.region.environment(self.region.local_url),
            cfg.log_dir / "functions",
            self._dead_letter,
            cfg.lambdas,
            on_line=self.alarms.on_log_line,
        )
        self.lambdas.warm_up()
        invoke = Invoke(
            self.lambdas.specs, self._invoke_now, self._invoke_target, self.region.name, self.region.account
        )
        self.invoke = InvokeEndpoint(invoke).start()
        for source in self.stack.queue_sources:
            if source.enabled:
                poller = QueuePoller(self.lambdas, self.client("sqs"), source, self.region.name)
                poller.start()
                self.pollers.append(poller)
        self.router.start()
        self.autoscaling.start()
        self.alarms.start()
        if cfg.schedule_scale > 0:
            for rule in self.stack.rules:
                seconds = schedule_seconds(rule.schedule)
                if seconds:
                    t = threading.Thread(
                        target=self._schedule,
                        args=(rule, seconds * cfg.schedule_scale),
                        daemon=True,
                        name=f"schedule-{rule.name}",
                    )
                    t.start()
                    self._threads.append(t)
        self.started = time.time()

    def _play_load_balancer(self) -> None:
        """The stack's load balancer, if it has one: lab.forwarder carries its listeners' connections
        on an address of the lab bridge, and the lab's Auto Scaling deregisters before it terminates."""
        balancers = self.client("elbv2").describe_load_balancers()["LoadBalancers"]
        if not balancers:
            return
        from lab.forwarder import Deregistrations, Forwarder

        cfg = self.config
        network = ipaddress.ip_network(cfg.subnet)
        self.load_balancer_address = str(network.network_address + LOAD_BALANCER_HOST)
        deregistrations = Deregistrations(scale=cfg.deregistration_scale)
        deregistrations.install()
        assert self.autoscaling is not None
        self.autoscaling.deregistrations = deregistrations
        self.forwarder = Forwarder(
            self.region, cfg.bridge, self.load_balancer_address, network.prefixlen, deregistrations
        )
        self.forwarder.start(balancers[0]["LoadBalancerArn"])

    def _install_bus_capture(self) -> None:
        """Events the control plane puts on any bus reach the lab's router (rules + timeline capture)."""
        from moto.events.models import EventsBackend

        original = EventsBackend.put_events
        lab = self

        def put_events(backend: Any, events: list[dict]) -> list[dict]:
            entries = original(backend, events)
            for event, entry in zip(events, entries, strict=False):
                if "EventId" not in entry or lab.router is None:
                    continue
                bus = str(event.get("EventBusName") or "default").rsplit("/", 1)[-1]
                envelope = delivered(
                    event,
                    event_id=entry["EventId"],
                    account=backend.account_id,
                    region=backend.region_name,
                    time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                )
                lab.router.put(envelope, bus)
            return entries

        patches.setattr(EventsBackend, "put_events", put_events)

    # -- glue -------------------------------------------------------------------------------------------
    def _invoke_target(self, function: str, event: dict) -> str:
        assert self.lambdas is not None
        return self.lambdas.invoke_async(function, event)

    def _invoke_now(self, function: str, event: dict) -> dict:
        assert self.lambdas is not None
        return self.lambdas.invoke(function, event, kind="sync")

    def _script_env(self, _agent: Any) -> dict[str, str]:
        assert self.region is not None
        venv_bin = str(Path(sys.executable).parent)
        return {
            **self.region.environment(self.region.instance_url),
            "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        }

    def _s3_put(self, bucket: str, key: str, text: str) -> None:
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())

    def _queue_url(self, arn: str) -> str | None:
        assert self.stack is not None
        return self.stack.queues.get(arn)

    def _dead_letter(self, request_id: str, spec: FunctionSpec, event: dict, reply: dict, error: str) -> None:
        if spec.on_failure_arn:
            record = {
                "version": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "requestContext": {
                    "requestId": request_id,
                    "functionArn": f"{spec.arn}:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": spec.max_retries + 1,
                },
                "requestPayload": event,
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "responsePayload": {k: reply.get(k) for k in ("errorType", "errorMessage", "stackTrace")},
            }
            self._deliver_to(spec.on_failure_arn, json.dumps(record), {})
        if spec.dead_letter_arn:
            attrs = {
                "RequestID": {"DataType": "String", "StringValue": request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {
                    "DataType": "String",
                    "StringValue": (reply.get("errorMessage") or error)[:1000],
                },
            }
            self._deliver_to(spec.dead_letter_arn, json.dumps(event), attrs)
        if not spec.on_failure_arn and not spec.dead_letter_arn:
            log.warning("%s: event %s dropped after retries (no DLQ): %s", spec.name, request_id, error)

    def _deliver_to(self, arn: str, body: str, attrs: dict) -> None:
        if ":sqs:" in arn:
            url = self._queue_url(arn)
            if url:
                self.client("sqs").send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)
        elif ":sns:" in arn:
            self.client("sns").publish(TopicArn=arn, Message=body)
        elif ":events:" in arn:
            self.client("events").put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - Failure",
                        "Detail": body,
                        "EventBusName": arn,
                    }
                ]
            )

    def _aws_metrics(self) -> list[Datum]:
        """AWS/SQS depth of every stack queue and AWS/Lambda Errors/Invocations, as AWS publishes them."""
        assert self.region is not None and self.lambdas is not None and self.stack is not None
        now = time.time()
        out = []
        for url in self.stack.queues.values():
            name = url.rsplit("/", 1)[-1]
            try:
                a = self.client("sqs").get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                out.append(
                    Datum(
                        now,
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        {"QueueName": name},
                        float(a.get("ApproximateNumberOfMessages", 0)),
                    )
                )
            except Exception:
                continue
        records = self.lambdas.records[self._lambda_seen :]
        self._lambda_seen += len(records)
        for r in records:
            out.append(Datum(now, "AWS/Lambda", "Invocations", {"FunctionName": r.function}, 1.0))
            out.append(Datum(now, "AWS/Lambda", "Errors", {"FunctionName": r.function}, 0.0 if r.ok else 1.0))
            out.append(Datum(now, "AWS/Lambda", "Errors", {}, 0.0 if r.ok else 1.0))
        return out

    def _schedule(self, rule: RuleSpec, every: float) -> None:
        while not self._stop.wait(every):
            self.fire_schedule(rule.name)

    def fire_schedule(self, name_or_function: str) -> None:
        """Deliver a Scheduled Event now, for the rule of that name or the rule that targets that function."""
        assert self.stack is not None and self.router is not None and self.factory is not None
        for rule in self.stack.rules:
            if rule.schedule and (
                name_or_function in rule.name or any(name_or_function in t for t in rule.targets)
            ):
                self.router.fire_schedule(rule, self.factory)
                return
        raise KeyError(f"no scheduled rule for {name_or_function}")

    def set_function_env(self, changes: dict[str, str], functions: list[str] | None = None) -> None:
        """What UpdateFunctionConfiguration does to the environment of every function (or of those whose
        name contains one of ``functions``): the next invocations cold-start with it."""
        assert self.lambdas is not None
        for name in self.lambdas.specs:
            if functions is None or any(f in name for f in functions):
                self.lambdas.update_environment(name, changes)

    def emit(self, event: dict) -> None:
        assert self.router is not None
        self.router.put(event)

    def dump(self, directory: Path) -> None:
        """What happened, as JSON files for whoever debugs a failed run."""
        directory.mkdir(parents=True, exist_ok=True)

        def write(name: str, data: Any) -> None:
            (directory / name).write_text(json.dumps(data, indent=1, default=str))

        if self.agents:
            write("commands.json", self.agents.history)
        if self.lambdas:
            write("invocations.json", [r.__dict__ for r in self.lambdas.records])
        if self.router:
            write("aws-events.json", [{"at": c.at, **c.event} for c in self.router.aws_events])
            write("operator-events.json", [{"at": c.at, **c.event} for c in self.router.captured])
        if self.autoscaling:
            write("lifecycle.json", [c.__dict__ for c in self.autoscaling.completed])

    # -- teardown ---------------------------------------------------------------------------------------
    def teardown(self) -> None:
        self._stop.set()
        steps = [
            ("pollers", lambda: [p.stop() for p in self.pollers]),
            ("router", lambda: self.router and self.router.stop()),
            ("autoscaling", lambda: self.autoscaling and self.autoscaling.stop()),
            ("forwarder", lambda: self.forwarder and self.forwarder.stop()),
            ("alarms", lambda: self.alarms and self.alarms.stop()),
            ("invoke", lambda: self.invoke and self.invoke.stop()),
            ("lambdas", lambda: self.lambdas and self.lambdas.close()),
            ("agents", lambda: self.agents and self.agents.close()),
            ("fleet", lambda: self.fleet and self.fleet.close()),
            ("network", lambda: self.network and self.network.down()),
            ("region", lambda: self.region and self.region.stop()),
            ("patches", patches.undo_all),
        ]
        for name, step in steps:
            try:
                step()
            except BaseException as e:
                log.error("teardown %s: %s", name, e)

    # -- helpers for scenarios ----------------------------------------------------------------------------
    def group_name(self, role: str) -> str:
        assert self.stack is not None
        return self.stack.group(f"-{role}s" if not role.endswith("s") else f"-{role}").name

    def set_desired(self, role: str, n: int) -> None:
        self.client("autoscaling").set_desired_capacity(
            AutoScalingGroupName=self.group_name(role), DesiredCapacity=n
        )

    def instances(self, role: str, states: tuple[str, ...] = ("InService",)) -> list[str]:
        assert self.autoscaling is not None
        snap = self.autoscaling.snapshot().get(self.group_name(role), [])
        return [iid for iid, lstate, _ in snap if lstate in states]

    def operator_events(self) -> list[tuple[float, dict]]:
        assert self.router is not None
        return [(c.at, c.event) for c in self.router.captured]

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def quiet(self) -> bool:
        return bool(self.router and self.router.idle() and self.lambdas and self.lambdas.idle())

    def wait_quiet(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.quiet():
                return True
            time.sleep(0.2)
        return False


def settle(fn: Any, timeout: float, every: float = 1.0) -> Any:
    """Call ``fn`` until it returns something truthy or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        with contextlib.suppress(Exception):
            value = fn()
            if value:
                return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(every)
