"""A small world for handler-level tests: moto for what it emulates, wire-level fakes (botocore
``before-send`` handlers) for what it does not (CompleteLifecycleAction, agent registration,
throttling, an instance's lifecycle state while an action is pending), command results written into
moto's SSM backend, and the handlers invoked as Lambda would. Steps sent to the SQS queue are
recorded and delivered by the test, on a fake clock."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.loaders
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core import models as moto_models
from moto.core.botocore_stubber import MockRawResponse

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
REGION = "us-east-1"
CLUSTER = "demo"
MANAGERS = f"swarmkeeper-{CLUSTER}-managers"
WORKERS = f"swarmkeeper-{CLUSTER}-workers"
TABLE = f"swarmkeeper-{CLUSTER}-state"
BUS = f"swarmkeeper-{CLUSTER}"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{DEFAULT_ACCOUNT_ID}/swarmkeeper-{CLUSTER}-steps"
PREFIX = f"/swarmkeeper/{CLUSTER}"
AGENT_WAIT = 300
SWARM_ID = "swarm00000000000000000001"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_LAMBDA_FUNCTION_NAME": "swarmkeeper-unit",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",  # loading them costs about a second per test
    "CLUSTER_NAME": CLUSTER,
    "MANAGER_GROUP_NAME": MANAGERS,
    "WORKER_GROUP_NAME": WORKERS,
    "LAUNCH_HOOK_NAME": "swarmkeeper-launch",
    "TERMINATE_HOOK_NAME": "swarmkeeper-terminate",
    "STATE_TABLE_NAME": TABLE,
    "EVENT_BUS_NAME": BUS,
    "PARAMETER_PREFIX": PREFIX,
    "KMS_KEY_ID": f"alias/swarmkeeper-{CLUSTER}",
    "DOCUMENT_PREFIX": f"swarmkeeper-{CLUSTER}-",
    "STEP_QUEUE_URL": QUEUE_URL,
    "COMMAND_OUTPUT_BUCKET": f"swarmkeeper-{CLUSTER}-output",
    "STACKS_BUCKET": f"swarmkeeper-{CLUSTER}-stacks",
    "DOCKER_VERSION": "27.3.1",
    "AGENT_WAIT_SECONDS": str(AGENT_WAIT),
    "DRAIN_TIMEOUT_SECONDS": "600",
    "POWERTOOLS_SERVICE_NAME": "swarmkeeper",
    "POWERTOOLS_METRICS_NAMESPACE": "Swarmkeeper",
    "LOG_LEVEL": "INFO",
}

_ids = itertools.count(1)
_LOADER = botocore.loaders.create_loader()


def new_session() -> boto3.session.Session:
    """A boto3 session sharing one botocore model loader: parsing service models per session costs
    a large part of a second per test."""
    session = boto3.session.Session()
    session._session.register_component("data_loader", _LOADER)
    return session


_MODULES: dict[str, Any] = {}


def load_event(name: str, *, event_id: str | None = None, **detail: Any) -> dict[str, Any]:
    """A JSON fixture from tests/events (AWS-documented shapes), with a fresh id and detail overrides."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    if "id" in event:
        event["id"] = event_id or f"00000000-0000-4000-8000-{next(_ids):012d}"
    if detail:
        event["detail"] = {**event["detail"], **detail}
    return event


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class LambdaContext:
    function_name: str = "swarmkeeper-unit"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:swarmkeeper-unit"
    aws_request_id: str = "req-0001"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _response(request: Any, status: int, body: str, content_type: str) -> AWSResponse:
    headers = {"Content-Type": content_type, "x-amzn-RequestId": "fake"}
    return AWSResponse(request.url, status, headers, MockRawResponse(body))


def _json_error(request: Any, code: str, message: str) -> AWSResponse:
    return _response(
        request, 400, json.dumps({"__type": code, "message": message}), "application/x-amz-json-1.1"
    )


def _query_error(request: Any, code: str, message: str) -> AWSResponse:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>fake</RequestId></ErrorResponse>"
    )
    return _response(request, 400, body, "text/xml")


class Fakes:
    """Wire-level stand-ins, registered on the session the runtime uses.

    A handler that answers a request switches moto's stubber off for that one request (moto would
    otherwise also run it, or raise NotImplementedError); a last ``before-send`` handler switches it
    back on. Every API call's parameters are recorded (``calls``)."""

    def __init__(self) -> None:
        self.session = new_session()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.pending_lifecycle: set[str] = set()
        self.launching: set[str] = set()  # launch action pending: Pending:Wait in its group
        self.abandoned: set[str] = set()  # launch action ABANDONed: Terminating in its group
        self.terminating: set[str] = set()  # terminate action pending: Terminating:Wait
        self.left: set[str] = set()  # terminate action completed: out of its group
        # The token of an instance's pending action, where a test gave one: completing it by another
        # token fails, as on AWS ("No active Lifecycle Action found with token ...").
        self.pending_tokens: dict[str, str] = {}
        self.lifecycle_results: dict[str, list[str]] = {}
        self.hook_results: list[tuple[str, str, str]] = []  # (instance, hook, result)
        self.heartbeats: list[str] = []
        self.unregistered_agents: set[str] = set()
        self.throttles: dict[str, int] = {}  # "service.Operation" -> how many throttling answers left
        self.crashes: dict[str, int] = {}  # "service.Operation" -> how many calls die (the function with it)
        # (which item, what to do first): run once, just before a PutItem of such an item is sent
        self.before_put: list[tuple[Callable[[dict[str, Any]], bool], Callable[[], Any]]] = []
        ev = self.session.events
        ev.register("before-parameter-build", self._record)
        ev.register("before-send.auto-scaling.CompleteLifecycleAction", self._complete_lifecycle_action)
        ev.register("before-send.auto-scaling.RecordLifecycleActionHeartbeat", self._heartbeat)
        ev.register("before-send.ssm.SendCommand", self._send_command)
        ev.register("after-call.ssm.SendCommand", self._command_sent)
        ev.register("after-call.auto-scaling.DescribeAutoScalingGroups", self._lifecycle_states)
        ev.register("before-parameter-build.dynamodb.PutItem", self._put_item)
        ev.register_first("before-send", self._throttle)
        ev.register_first("before-call", self._crash)
        ev.register_last("before-send", self._moto_back_on)

    def throttle(self, service: str, operation: str, times: int = 1) -> None:
        self.throttles[f"{service}.{operation}"] = times

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, op, params in self.calls if op == operation]

    def _record(self, params: dict[str, Any], model: Any, event_name: str, **_: Any) -> None:
        self.calls.append((event_name.split(".")[1], model.name, copy.deepcopy(params)))
        if model.name == "SendCommand":
            self._targets = list(params.get("InstanceIds", []))

    def _answer(self, response: AWSResponse) -> AWSResponse:
        moto_models.botocore_stubber.enabled = False
        return response

    def _moto_back_on(self, **_: Any) -> None:
        moto_models.botocore_stubber.enabled = True

    def _throttle(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".")
        key = f"{service}.{operation}"
        if self.throttles.get(key, 0) <= 0:
            return None
        self.throttles[key] -= 1
        if service == "auto-scaling":
            return self._answer(_query_error(request, "Throttling", "Rate exceeded"))
        return self._answer(_json_error(request, "ThrottlingException", "Rate exceeded"))

    def _complete_lifecycle_action(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.throttles.get("auto-scaling.CompleteLifecycleAction", 0) > 0:
            return None  # _throttle answers
        params = {
            k: v[0]
            for k, v in parse_qs(
                request.body.decode() if isinstance(request.body, bytes) else request.body
            ).items()
        }
        instance_id = params["InstanceId"]
        if instance_id not in self.pending_lifecycle:
            msg = f"No active Lifecycle Action found with instance ID {instance_id}"
            return self._answer(_query_error(request, "ValidationError", msg))
        token = params.get("LifecycleActionToken")
        if token and token != self.pending_tokens.get(instance_id, token):
            msg = f"No active Lifecycle Action found with token {token}"
            return self._answer(_query_error(request, "ValidationError", msg))
        self.pending_lifecycle.discard(instance_id)
        if params["LifecycleHookName"] == "swarmkeeper-launch" and instance_id in self.launching:
            self.launching.discard(instance_id)
            if params["LifecycleActionResult"] == "ABANDON":
                self.abandoned.add(instance_id)
        if params["LifecycleHookName"] == "swarmkeeper-terminate" and instance_id in self.terminating:
            self.terminating.discard(instance_id)
            self.left.add(instance_id)
        self.pending_tokens.pop(instance_id, None)
        self.lifecycle_results.setdefault(instance_id, []).append(params["LifecycleActionResult"])
        self.hook_results.append((instance_id, params["LifecycleHookName"], params["LifecycleActionResult"]))
        body = (
            '<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
            "<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</CompleteLifecycleActionResponse>"
        )
        return self._answer(_response(request, 200, body, "text/xml"))

    def _heartbeat(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        instance_id = parse_qs(body)["InstanceId"][0]
        if instance_id not in self.pending_lifecycle:
            msg = f"No active Lifecycle Action found with instance ID {instance_id}"
            return self._answer(_query_error(request, "ValidationError", msg))
        self.heartbeats.append(instance_id)
        body = (
            '<RecordLifecycleActionHeartbeatResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
            "<RecordLifecycleActionHeartbeatResult/><ResponseMetadata><RequestId>fake</RequestId>"
            "</ResponseMetadata></RecordLifecycleActionHeartbeatResponse>"
        )
        return self._answer(_response(request, 200, body, "text/xml"))

    def _lifecycle_states(self, parsed: dict[str, Any], **_: Any) -> None:
        """moto keeps every instance InService: as in AWS, one whose launch action is pending is in
        Pending:Wait (an ABANDONed one is on its way out), one whose terminate action is pending in
        Terminating:Wait, no longer counted in the desired capacity, and gone once it completed."""
        for group in parsed.get("AutoScalingGroups", []):
            kept = []
            for instance in group.get("Instances", []):
                iid = instance["InstanceId"]
                if iid in self.left or iid in self.terminating:
                    group["DesiredCapacity"] -= 1
                if iid in self.left:
                    continue
                if iid in self.launching:
                    instance["LifecycleState"] = "Pending:Wait"
                elif iid in self.abandoned:
                    instance["LifecycleState"] = "Terminating"
                elif iid in self.terminating:
                    instance["LifecycleState"] = "Terminating:Wait"
                kept.append(instance)
            group["Instances"] = kept

    def _crash(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".")
        key = f"{service}.{operation}"
        if self.crashes.get(key, 0) > 0:
            self.crashes[key] -= 1
            raise RuntimeError(f"the function died calling {key}")

    def _put_item(self, params: dict[str, Any], **_: Any) -> None:
        """What a test wants to happen between a flow's read and its write (a race, made certain)."""
        for hook in list(self.before_put):
            matches, first = hook
            if matches(params["Item"]):
                self.before_put.remove(hook)
                first()

    def _command_sent(self, parsed: dict[str, Any], **_: Any) -> None:
        """moto sends a command without targets to every instance: keep only the requested ones.
        A command just sent is InProgress (moto says Success at once) until the test finishes it."""
        from moto.ssm.models import ssm_backends

        if "Command" not in parsed:
            return
        command_id = parsed["Command"]["CommandId"]
        for command in ssm_backends[DEFAULT_ACCOUNT_ID][REGION]._commands:
            if command.command_id == command_id:
                command.instance_ids = list(self._targets)
                command.invocations = [i for i in command.invocations if i["InstanceId"] in self._targets]
                for inv in command.invocations:
                    inv.update(Status="InProgress", StatusDetails="InProgress")

    def _send_command(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.throttles.get("ssm.SendCommand", 0) > 0:
            return None  # _throttle answers
        body = json.loads(request.body)
        for instance_id in body.get("InstanceIds", []):
            if instance_id in self.unregistered_agents:
                return self._answer(
                    _json_error(request, "InvalidInstanceId", "Instances not in a valid state for account")
                )
        return None


@dataclass
class Sent:
    command_id: str
    action: str
    instance_id: str
    parameters: dict[str, str]
    comment: str


class World:
    def __init__(self, clock: FakeClock, capsys: Any):
        self.clock = clock
        self.capsys = capsys
        self.fakes = Fakes()
        self.handlers: dict[str, Any] = {}
        self.delivered_steps = 0
        self.context = LambdaContext()
        self.answered: set[str] = set()

    # --- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        from aws_lambda_powertools.utilities import parameters

        from swarmkeeper import runtime

        parameters.clear_caches()
        s = new_session()
        self.ec2, self.asg, self.ssm = s.client("ec2"), s.client("autoscaling"), s.client("ssm")
        self.ddb, self.sqs, self.events = s.client("dynamodb"), s.client("sqs"), s.client("events")
        self.s3 = s.client("s3")
        self.s3.create_bucket(Bucket=ENV["COMMAND_OUTPUT_BUCKET"])
        self.s3.create_bucket(Bucket=ENV["STACKS_BUCKET"])
        self.s3.put_bucket_versioning(
            Bucket=ENV["STACKS_BUCKET"], VersioningConfiguration={"Status": "Enabled"}
        )
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.ddb.update_time_to_live(
            TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        self.sqs.create_queue(QueueName=f"swarmkeeper-{CLUSTER}-steps")
        self.events.create_event_bus(Name=BUS)
        image = "ami-12c6146b"  # one of moto's AMIs (describe_images costs seconds per test)
        self.ec2.create_launch_template(
            LaunchTemplateName="node", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.small"}
        )
        for group, role in ((MANAGERS, "manager"), (WORKERS, "worker"), ("other-cluster-workers", "worker")):
            cluster = CLUSTER if group != "other-cluster-workers" else "other"
            self.asg.create_auto_scaling_group(
                AutoScalingGroupName=group,
                LaunchTemplate={"LaunchTemplateName": "node", "Version": "$Latest"},
                MinSize=0,
                MaxSize=10,
                DesiredCapacity=0,
                AvailabilityZones=[f"{REGION}a"],
                Tags=[
                    {"Key": "swarmkeeper:cluster", "Value": cluster, "PropagateAtLaunch": True},
                    {"Key": "swarmkeeper:role", "Value": role, "PropagateAtLaunch": True},
                ],
            )
        self._reset_logging()
        runtime.reset(session=self.fakes.session, clock=self.clock)
        names = (
            "lifecycle_action",
            "instance_state",
            "command_status",
            "steps",
            "rotate_tokens",
            "stack_object",
        )
        for name in (*names, "interruption", "alarm", "reconcile"):
            self.handlers[name] = self._load(name)

    def teardown(self) -> None:
        from swarmkeeper import runtime

        runtime.reset()
        moto_models.botocore_stubber.enabled = True
        self._reset_logging(sys.__stderr__)

    def _reset_logging(self, stream: Any = None) -> None:
        # Powertools configures the service logger once; point its handler at this test's stdout.
        for handler in logging.getLogger("swarmkeeper").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = stream or sys.stdout

    def _load(self, name: str) -> Any:
        # Loaded once per session: module state is settings, Logger/Metrics/Tracer; the runtime they
        # use is rebuilt per test by runtime.reset().
        if name in _MODULES:
            return _MODULES[name]
        spec = importlib.util.spec_from_file_location(
            f"fn_{name}_{secrets.token_hex(4)}", ROOT / "functions" / name / "handler.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self._reset_logging()
        _MODULES[name] = module
        return module

    # --- instances -------------------------------------------------------------------------

    def launch(self, group: str, count: int = 1) -> list[str]:
        before = self._group_instances(group)
        desired = len(before) + count
        self.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=desired)
        new = [i for i in self._group_instances(group) if i not in before]
        assert len(new) == count
        self.fakes.pending_lifecycle.update(new)
        self.fakes.launching.update(new)
        return new

    def managers(self, count: int = 1) -> list[str]:
        return self.launch(MANAGERS, count)

    def workers(self, count: int = 1) -> list[str]:
        return self.launch(WORKERS, count)

    def _group_instances(self, group: str) -> list[str]:
        groups = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        return [i["InstanceId"] for i in groups[0]["Instances"]]

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])
        self.fakes.pending_lifecycle.discard(instance_id)
        self.fakes.launching.discard(instance_id)

    def tags(self, instance_id: str) -> dict[str, str]:
        r = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in r.get("Tags", [])}

    def private_ip(self, instance_id: str) -> str:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "PrivateIpAddress"
        ]

    # --- events in -------------------------------------------------------------------------

    def invoke(self, name: str, event: Any) -> Any:
        self._reset_logging()
        return self.handlers[name].lambda_handler(event, self.context)

    def lifecycle(self, instance_id: str, group: str | None = None, event_id: str | None = None) -> Any:
        group = group or self._group_of(instance_id)
        event = load_event(
            "ec2-instance-launch-lifecycle-action",
            event_id=event_id,
            EC2InstanceId=instance_id,
            AutoScalingGroupName=group,
        )
        event["resources"] = [
            f"arn:aws:autoscaling:{REGION}:{DEFAULT_ACCOUNT_ID}:autoScalingGroup:x:autoScalingGroupName/{group}"
        ]
        return self.invoke("lifecycle_action", event)

    def running(self, instance_id: str, event_id: str | None = None) -> Any:
        event = load_event(
            "ec2-instance-state-change-notification", event_id=event_id, **{"instance-id": instance_id}
        )
        return self.invoke("instance_state", event)

    def agent_ready(self, instance_id: str, event_id: str | None = None, status: str = "Success") -> Any:
        event = load_event(
            "ec2-state-manager-instance-association-state-change",
            event_id=event_id,
            **{"instance-id": instance_id, "status": status},
        )
        return self.invoke("instance_state", event)

    def _group_of(self, instance_id: str) -> str:
        return self.tags(instance_id).get("aws:autoscaling:groupName", WORKERS)

    # --- commands --------------------------------------------------------------------------

    def _backend(self) -> Any:
        from moto.ssm.models import ssm_backends

        return ssm_backends[DEFAULT_ACCOUNT_ID][REGION]

    def sent(self, action: str | None = None) -> list[Sent]:
        out = []
        for c in self._backend()._commands:
            act = c.document_name.removeprefix(f"swarmkeeper-{CLUSTER}-")
            if action is None or act == action:
                params = {k: v[0] for k, v in c.parameters.items()}
                out.append(Sent(c.command_id, act, c.instance_ids[0], params, c.comment))
        return out

    def finish(
        self,
        sent: Sent,
        status: str = "Success",
        stdout: str = "",
        stderr: str = "",
        event_id: str | None = None,
        stdout_url: str = "",
    ) -> Any:
        """The command ends on its instance: its output is set in moto, then its status event arrives."""
        command = next(c for c in self._backend()._commands if c.command_id == sent.command_id)
        for inv in command.invocations:
            inv.update(
                Status=status,
                StatusDetails=status,
                StandardOutputContent=stdout,
                StandardErrorContent=stderr,
                StandardOutputUrl=stdout_url,
            )
        event = load_event(
            "ec2-command-invocation-status-change-notification",
            event_id=event_id,
            **{
                "command-id": sent.command_id,
                "document-name": f"swarmkeeper-{CLUSTER}-{sent.action}",
                "instance-id": sent.instance_id,
                "status": status,
            },
        )
        return self.invoke("command_status", event)

    def bootstrap_succeeds(self, sent: Sent) -> str:
        """What bootstrap-node does on a healthy instance (init also writes the cluster parameters)."""
        node_id = secrets.token_hex(13)[:25]
        if sent.parameters["Mode"] == "init":
            self.ssm.put_parameter(Name=f"{PREFIX}/cluster-id", Value=SWARM_ID, Type="String")
            self.ssm.put_parameter(
                Name=f"{PREFIX}/manager-addresses",
                Value=f"{sent.parameters['AdvertiseAddress']}:2377",
                Type="String",
            )
        role = sent.parameters["Role"]
        self.finish(sent, stdout=f"docker ready\nnode-id={node_id} role={role} cluster-id={SWARM_ID}\n")
        return node_id

    def verify_succeeds(self, sent: Sent) -> Any:
        p = sent.parameters
        return self.finish(sent, stdout=f"node-id={p['NodeId']} state=ready role={p['Role']}\n")

    # --- steps -----------------------------------------------------------------------------

    def steps_sent(self) -> list[dict[str, Any]]:
        return self.fakes.calls_to("SendMessage")

    def deliver_steps(self) -> list[Any]:
        """Deliver every step sent since the last call, in order, each when its delay has passed."""
        results = []
        pending = self.steps_sent()[self.delivered_steps :]
        self.delivered_steps += len(pending)
        base = self.clock.now
        for i, message in enumerate(sorted(pending, key=lambda m: m.get("DelaySeconds", 0))):
            due = base + message.get("DelaySeconds", 0)
            if due > self.clock.now:
                self.clock.now = due
            event = json.loads((EVENTS / "unit-sqs-step.json").read_text())
            event["Records"][0]["body"] = message["MessageBody"]
            event["Records"][0]["messageId"] = f"msg-{self.delivered_steps}-{i}"
            results.append(self.invoke("steps", event))
        return results

    def settle(self, rounds: int = 50) -> None:
        """Deliver steps until none are left (the op has moved on or closed)."""
        for _ in range(rounds):
            if not self.deliver_steps():
                return
        raise AssertionError("steps never settled")

    # --- observations ----------------------------------------------------------------------

    def published(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        out = []
        for call in self.fakes.calls_to("PutEvents"):
            for entry in call["Entries"]:
                if detail_type is None or entry["DetailType"] == detail_type:
                    out.append(
                        {
                            "detail-type": entry["DetailType"],
                            "source": entry["Source"],
                            **json.loads(entry["Detail"]),
                        }
                    )
        return out

    def items(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        raw = self.ddb.scan(TableName=TABLE)["Items"]
        return [{k: de.deserialize(v) for k, v in item.items()} for item in raw]

    def op(self, instance_id: str) -> dict[str, Any] | None:
        return next((i for i in self.items() if i["pk"] == f"op#{instance_id}"), None)

    def in_flight(self) -> list[dict[str, Any]]:
        return [i for i in self.items() if i.get("kind") == "join" and i["stage"] not in ("joined", "failed")]

    def lock(self) -> dict[str, Any] | None:
        return next((i for i in self.items() if i["pk"] == "lock#swarm-init"), None)

    def output(self) -> str:
        """Everything the functions printed (log lines, EMF metrics) so far."""
        captured = self.capsys.readouterr()
        self._out = getattr(self, "_out", "") + captured.out + captured.err
        return self._out

    # --- a whole join ----------------------------------------------------------------------

    def join(self, instance_id: str) -> str:
        """Drive one instance from its launch event to Ready; returns its node id."""
        self.lifecycle(instance_id)
        self.settle()
        boot = [s for s in self.sent("bootstrap-node") if s.instance_id == instance_id][-1]
        node_id = self.bootstrap_succeeds(boot)
        self.settle()
        verify = [s for s in self.sent("verify-node") if s.parameters["NodeId"] == node_id][-1]
        self.verify_succeeds(verify)
        return node_id

    # --- exit flow -------------------------------------------------------------------------

    def terminating(self, instance_id: str, event_id: str | None = None) -> Any:
        """Auto Scaling terminates the instance: its terminate lifecycle action is pending and its
        event arrives."""
        self.fakes.pending_lifecycle.add(instance_id)
        self.fakes.terminating.add(instance_id)
        group = self._group_of(instance_id)
        event = load_event(
            "ec2-instance-terminate-lifecycle-action",
            event_id=event_id,
            EC2InstanceId=instance_id,
            AutoScalingGroupName=group,
        )
        return self.invoke("lifecycle_action", event)

    def state_change(self, instance_id: str, state: str, event_id: str | None = None) -> Any:
        event = load_event(
            "ec2-instance-state-change-notification",
            event_id=event_id,
            **{"instance-id": instance_id, "state": state},
        )
        return self.invoke("instance_state", event)

    def dies(self, instance_id: str) -> Any:
        """The instance is terminated outside Auto Scaling's graceful path; its state events arrive."""
        self.ec2.terminate_instances(InstanceIds=[instance_id])
        self.fakes.pending_lifecycle.discard(instance_id)
        self.fakes.launching.discard(instance_id)
        return self.state_change(instance_id, "terminated")

    def terminate_results(self, instance_id: str) -> list[str]:
        return [
            r
            for i, hook, r in self.fakes.hook_results
            if i == instance_id and hook == "swarmkeeper-terminate"
        ]

    def nodes(self) -> dict[str, dict[str, Any]]:
        """node#<instance> items: instance id -> {node_id, role}."""
        return {i["pk"].removeprefix("node#"): i for i in self.items() if i["pk"].startswith("node#")}

    def swarm_output(
        self,
        overrides: dict[str, tuple[str, str]] | None = None,
        extra: tuple[str, ...] = (),
        removed: tuple[str, ...] = (),
    ) -> str:
        """describe-swarm's output for every joined node: ready and reachable unless ``overrides`` gives
        a node id (state, manager status or '-'). The first manager is the leader."""
        overrides = overrides or {}
        lines, leader = [], None
        for instance_id, item in sorted(self.nodes().items()):
            node_id, role = item["node_id"], item["role"]
            if node_id in removed:
                continue
            state, status = overrides.get(node_id, ("ready", "reachable" if role == "manager" else "-"))
            if role == "manager" and leader is None and status == "reachable":
                status, leader = "leader", node_id
            ip = self.private_ip(instance_id)
            lines.append(f"{node_id} {role} {state} active {status} {ip} host-{instance_id}")
        lines.extend(extra)
        return "\n".join([*lines, f"nodes={len(lines)}"]) + "\n"

    def reconcile_pass(self, stdout: str | None = None, **kwargs: Any) -> Any:
        """A scheduled reconcile: describe-swarm goes to a manager and answers with ``stdout``."""
        started = self.invoke("reconcile", load_event("scheduled-event"))
        assert started["outcome"] == "reconcile", started
        return self.answer_describe(stdout, **kwargs)

    def answer_describe(self, stdout: str | None = None, **kwargs: Any) -> Any:
        describe = self.sent("describe-swarm")[-1]
        self.answered.add(describe.command_id)
        self.clock.advance(1)
        return self.finish(describe, stdout=stdout if stdout is not None else self.swarm_output(**kwargs))

    def leave_op(self, instance_id: str) -> dict[str, Any] | None:
        op = self.op(instance_id)
        return op if op and op.get("kind") == "leave" else None

    def commands_for(self, action: str, node_id: str) -> list[Sent]:
        return [s for s in self.sent(action) if s.parameters.get("NodeId") == node_id]
