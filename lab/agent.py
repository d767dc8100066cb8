"""The SSM agent of every lab instance, and the Run Command operations moto lacks.

moto's SendCommand accepts anything and its invocations always say Success with empty output. In
the lab, SendCommand checks what AWS checks (the document exists, every instance's agent has
registered, the parameters fit the document), each registered agent runs the document's real
shell with ``{{ Param }}`` substituted inside its instance's network namespace, and status, exit
code and output are written back where GetCommandInvocation and (added here)
ListCommandInvocations / DescribeInstanceInformation read them. Status changes go out as the
documented EventBridge events.
"""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab import patches
from lab.holds import HeldResult, Hold
from lab.ssm_documents import RunCommandError, render_commands, validate_parameters
from lab.ssm_listing import filters_match, information_filters, instance_entry, invocation_entry

log = logging.getLogger("lab.agent")

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class AgentKnobs:
    registration_delay: float = 3.0  # after the instance is running (AWS: some tens of seconds)
    concurrency: int = 4  # commands one agent runs at once
    timeout_scale: float = 1.0


@dataclass
class Agent:
    instance_id: str
    node: Any
    ip: str
    hostname: str
    registered_at: datetime.datetime | None = None
    online: bool = True
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(4))
    running: set[str] = field(default_factory=set)


class SsmAgents:
    """Every instance's agent plus the Run Command side of the embedded region."""

    def __init__(
        self,
        region: Any,
        factory: Any,
        emit: Callable[[dict], None],
        script_env: Callable[[Agent], dict[str, str]],
        s3_put: Callable[[str, str, str], None] | None = None,
        knobs: AgentKnobs | None = None,
    ):
        self.region = region
        self.factory = factory
        self.emit = emit
        self.script_env = script_env
        self.s3_put = s3_put
        self.knobs = knobs or AgentKnobs()
        self.agents: dict[str, Agent] = {}
        self.history: list[dict] = []  # every invocation the agents ran, for reports and assertions
        self.associations: list[Any] = []  # lab.provision.AssociationSpec, applied on registration
        self.holds: list[Hold] = []  # results held back until released (``hold``)
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- registration -------------------------------------------------------------------------------
    def attach(self, instance_id: str, node: Any, ip: str, hostname: str, delay: float | None = None) -> None:
        """The instance is running: its agent registers after ``delay`` seconds."""
        agent = Agent(instance_id, node, ip, hostname, slots=threading.Semaphore(self.knobs.concurrency))
        with self._lock:
            self.agents[instance_id] = agent
        delay = self.knobs.registration_delay if delay is None else delay

        def register() -> None:
            with self._lock:
                if self.agents.get(instance_id) is not agent or not agent.online:
                    return
                agent.registered_at = _now()
                log.info("agent on %s registered", instance_id)
            self._start(self._apply_associations, agent, name=f"assoc-{instance_id}")

        if delay <= 0:
            register()
        else:
            t = threading.Timer(delay, register)
            t.daemon = True
            self._timers.append(t)
            t.start()

    def detach(self, instance_id: str) -> None:
        """The instance is going away: the agent stops answering; its unfinished commands fail."""
        with self._lock:
            agent = self.agents.get(instance_id)
            if agent:
                agent.online = False

    def registered(self, instance_id: str) -> bool:
        agent = self.agents.get(instance_id)
        return bool(agent and agent.online and agent.registered_at)

    def hold(self, document: str, which: Callable[[str], bool]) -> Hold:
        """From now on, the results of ``document`` (a name suffix) on the instances ``which`` selects
        are held back until the returned hold is released."""
        hold = Hold(document, which)
        with self._lock:
            self.holds.append(hold)
        return hold

    def _hold_for(self, document: str, instance_id: str) -> Hold | None:
        with self._lock:
            return next(
                (
                    hold
                    for hold in self.holds
                    if not hold.released.is_set()
                    and document.endswith(hold.document)
                    and hold.which(instance_id)
                ),
                None,
            )

    def close(self) -> None:
        self._closed = True
        for hold in self.holds:
            hold.released.set()
        for t in self._timers:
            t.cancel()
        for agent in list(self.agents.values()):
            agent.online = False
        for th in self._threads:
            th.join(timeout=0.1)

    # -- State Manager ---------------------------------------------------------------------------------
    def _start(self, target: Callable[..., None], *args: Any, name: str) -> None:
        th = threading.Thread(target=target, args=args, daemon=True, name=name)
        self._threads.append(th)
        th.start()

    def _apply_associations(self, agent: Agent) -> None:
        """What State Manager does when an agent registers: apply every association targeting the
        instance (by id or tag), once, and send its Instance Association State Change event."""
        if not self.associations or self._closed:
            return
        instance = self.region.backend("ec2").get_instance(agent.instance_id)
        tags = {t["key"]: t["value"] for t in instance.get_tags()}
        for association in self.associations:
            if _targets(association.targets, agent.instance_id, tags):
                self._apply(agent, association)

    def _apply(self, agent: Agent, association: Any) -> None:
        content, version = self._document(self.region.backend("ssm"), association.document)
        record = {
            "association_id": association.association_id,
            "document": association.document,
            "parameters": {},
        }
        with agent.slots:
            if not agent.online or self._closed:
                return
            status, *_ = self._run_steps(agent, render_commands(content, {}), record)
        if self._closed:
            return
        done = 1 if status == "Success" else 0
        summary = f"1 out of 1 plugin processed, {done} success, {1 - done} failed, 0 timedout, 0 skipped."
        self.emit(
            self.factory.instance_association_state_change(
                association.association_id,
                agent.instance_id,
                association.document,
                version,
                association.targets,
                status,
                summary,
            )
        )

    # -- moto patches ---------------------------------------------------------------------------------
    def install(self) -> None:
        from moto.ssm.models import SimpleSystemManagerBackend
        from moto.ssm.responses import SimpleSystemManagerResponse

        agents = self
        original_send = SimpleSystemManagerBackend.send_command

        def send_command(backend: Any, **kw: Any) -> Any:
            return agents._send_command(backend, original_send, kw)

        def list_command_invocations(resp: Any) -> Any:
            from moto.core.responses import ActionResult

            return ActionResult(
                agents._list_invocations(
                    resp.ssm_backend,
                    resp._get_param("CommandId"),
                    resp._get_param("InstanceId"),
                    bool(resp._get_param("Details", False)),
                    resp._get_param("Filters") or [],
                )
            )

        def describe_instance_information(resp: Any) -> Any:
            from moto.core.responses import ActionResult

            return ActionResult(
                {
                    "InstanceInformationList": agents._instance_information(
                        resp._get_param("InstanceInformationFilterList") or [],
                        resp._get_param("Filters") or [],
                    )
                }
            )

        patches.setattr(SimpleSystemManagerBackend, "send_command", send_command)
        patches.setattr(SimpleSystemManagerResponse, "list_command_invocations", list_command_invocations)
        patches.setattr(
            SimpleSystemManagerResponse, "describe_instance_information", describe_instance_information
        )

    # -- SendCommand ------------------------------------------------------------------------------------
    def _document(self, backend: Any, name: str, version: str | None = None) -> tuple[dict, str]:
        try:
            doc = backend.get_document(name, version, None, "JSON")
        except Exception as e:
            raise RunCommandError("InvalidDocument", f"Document {name} does not exist.") from e
        return json.loads(doc["Content"]), str(doc.get("DocumentVersion", "1"))

    def _send_command(self, backend: Any, original: Callable, kw: dict) -> Any:
        name = kw.get("document_name") or ""
        content, version = self._document(backend, name)
        parameters = kw.get("parameters") or {}
        validate_parameters(content, parameters)
        ids = list(kw.get("instance_ids") or [])
        if len(ids) > 50:
            raise RunCommandError("ValidationException", "InstanceIds: at most 50 instance ids.")
        if not ids and not kw.get("targets"):
            raise RunCommandError("ValidationException", "Either InstanceIds or Targets must be given.")
        with self._lock:
            bad = [i for i in ids if not self.registered(i)]
            if bad:
                raise RunCommandError("InvalidInstanceId", "Instances not in a valid state for account")
            command = original(backend, **kw)
            if not kw.get("targets"):
                # moto resolves an empty Targets list to every instance in the region; AWS sends the
                # command to exactly the InstanceIds given.
                command.instance_ids = ids
            # Targets resolve through EC2 tags in moto; AWS only sends to managed (registered) instances.
            command.instance_ids = [i for i in command.instance_ids if self.registered(i)]
            command.target_count = len(command.instance_ids)
            command.completed_count = 0
            command.error_count = 0
            command.status = "Pending" if command.instance_ids else "Success"
            command.status_details = command.status
            command.document_version = version
            requested = command.requested_date_time
            command.invocations = []
            for instance_id in command.instance_ids:
                inv = command.invocation_response(instance_id, "aws:runShellScript")
                inv.update(
                    {
                        "DocumentVersion": version,
                        "Status": "Pending",
                        "StatusDetails": "Pending",
                        "ResponseCode": -1,
                        "ExecutionStartDateTime": "",
                        "ExecutionElapsedTime": "",
                        "ExecutionEndDateTime": "",
                        "StandardOutputContent": "",
                        "StandardErrorContent": "",
                        "StandardErrorUrl": "",
                    }
                )
                command.invocations.append(inv)
        for inv in list(command.invocations):
            self._status_event(command, inv, requested)
            th = threading.Thread(
                target=self._run_invocation,
                args=(command, inv, content, parameters),
                daemon=True,
                name=f"ssm-{command.command_id[:8]}-{inv['InstanceId']}",
            )
            self._threads.append(th)
            th.start()
        return command

    def _status_event(self, command: Any, inv: dict, requested: Any) -> None:
        if self._closed:
            return
        self.emit(
            self.factory.command_invocation_status(
                command.command_id, command.document_name, inv["InstanceId"], _iso(requested), inv["Status"]
            )
        )

    def _set(self, command: Any, inv: dict, **fields: Any) -> None:
        with self._lock:
            inv.update(fields)
        if "Status" in fields:
            self._status_event(command, inv, command.requested_date_time)
            self._update_command(command)

    def _update_command(self, command: Any) -> None:
        emit = None
        with self._lock:
            statuses = [i["Status"] for i in command.invocations]
            done = [s for s in statuses if s in TERMINAL]
            command.completed_count = len(done)
            command.error_count = sum(1 for s in statuses if s in ("Failed", "TimedOut", "Undeliverable"))
            old = command.status
            if len(done) < len(statuses):
                new = "InProgress" if any(s != "Pending" for s in statuses) else "Pending"
            elif all(s == "Success" for s in statuses):
                new = "Success"
            elif any(s == "TimedOut" for s in statuses):
                new = "TimedOut"
            elif any(s == "Cancelled" for s in statuses):
                new = "Cancelled"
            else:
                new = "Failed"
            command.status = command.status_details = new
            if new != old and new in TERMINAL:
                emit = new
        if emit and not self._closed:
            self.emit(
                self.factory.command_status(
                    command.command_id,
                    command.document_name,
                    command.parameters,
                    _iso(command.requested_date_time),
                    _iso(command.expires_after),
                    emit,
                )
            )

    def _run_invocation(self, command: Any, inv: dict, content: dict, parameters: dict) -> None:
        instance_id = inv["InstanceId"]
        agent = self.agents.get(instance_id)
        if agent is None:
            self._set(command, inv, Status="Failed", StatusDetails="Undeliverable")
            return
        with agent.slots:
            if not agent.online or self._closed:
                self._set(command, inv, Status="Failed", StatusDetails="Undeliverable")
                return
            started = _now()
            self._set(
                command,
                inv,
                Status="InProgress",
                StatusDetails="InProgress",
                ExecutionStartDateTime=_iso(started),
            )
            status, code, stdout, stderr = self._run_steps(
                agent,
                render_commands(content, parameters),
                {
                    "command_id": command.command_id,
                    "document": command.document_name,
                    "parameters": parameters,
                },
            )
            ended = _now()
        hold = self._hold_for(command.document_name, instance_id)
        if hold is not None:
            hold.held.append(HeldResult(command.command_id, instance_id, status, stdout, time.time()))
            log.info("result of %s on %s held back", command.document_name, instance_id)
            hold.released.wait()
            if self._closed:
                return
        urls = self._write_s3(command, instance_id, stdout, stderr)
        self._set(
            command,
            inv,
            ResponseCode=code,
            ExecutionEndDateTime=_iso(ended),
            ExecutionElapsedTime=_duration(ended - started),
            StandardOutputContent=stdout[:STDOUT_LIMIT],
            StandardErrorContent=stderr[:STDERR_LIMIT],
            StandardOutputUrl=urls[0],
            StandardErrorUrl=urls[1],
            Status=status,
            StatusDetails=status,
        )

    def _run_steps(
        self, agent: Agent, steps: list[tuple[str, str, int]], record: dict
    ) -> tuple[str, int, str, str]:
        """Run a document's steps on the agent's node in order, until one fails, each bounded by its
        timeoutSeconds (SendCommand's TimeoutSeconds bounds the delivery only), each recorded in
        ``history`` (``record`` + its results). Returns status, last exit code, stdout, stderr."""
        env = self.script_env(agent)
        env["AWS_SSM_INSTANCE_ID"] = agent.instance_id
        env["AWS_SSM_REGION_NAME"] = self.region.name
        env["SWARMKEEPER_RUN_DIR"] = str(agent.node.run_dir)
        outs: list[str] = []
        errs: list[str] = []
        code, status = 0, "Success"
        for step_name, script, step_timeout in steps:
            timeout = step_timeout * self.knobs.timeout_scale
            t0 = time.monotonic()
            try:
                proc = agent.node.run(["sh", "-c", script], env=env, timeout=timeout)
                out, err, code = proc.stdout or "", proc.stderr or "", proc.returncode
            except subprocess.TimeoutExpired as e:
                out = _text(e.stdout)
                err = _text(e.stderr) + f"\nfailed to run commands: command timed out after {timeout:.0f}s\n"
                code, status = -1, "TimedOut"
            except Exception as e:
                out, err, code, status = "", f"failed to run commands: {e}\n", -1, "Failed"
            outs.append(out)
            errs.append(err)
            self.history.append(
                {
                    **record,
                    "instance_id": agent.instance_id,
                    "step": step_name,
                    "exit_code": code,
                    "seconds": round(time.monotonic() - t0, 2),
                    "stdout": out[-2000:],
                    "stderr": err[-2000:],
                }
            )
            if status == "Success" and code != 0:
                status = "Failed"
            if status != "Success":
                break
            if not agent.online:
                status = "Failed"
                break
        return status, code, "".join(outs), "".join(errs)

    def _write_s3(self, command: Any, instance_id: str, stdout: str, stderr: str) -> tuple[str, str]:
        bucket = command.output_s3_bucket_name
        if not bucket or not self.s3_put:
            return "", ""
        prefix = (command.output_s3_key_prefix or "").strip("/")
        base = "/".join(p for p in (prefix, command.command_id, instance_id, "awsrunShellScript") if p)
        urls = []
        for stream, text in (("stdout", stdout), ("stderr", stderr)):
            key = f"{base}/0.awsrunShellScript/{stream}"
            try:
                if text:
                    self.s3_put(bucket, key, text)
                    urls.append(f"https://s3.{self.region.name}.amazonaws.com/{bucket}/{key}")
                else:
                    urls.append("")
            except Exception:
                log.exception("writing %s output to s3://%s/%s", command.command_id, bucket, key)
                urls.append("")
        return urls[0], urls[1]

    # -- the operations moto lacks ----------------------------------------------------------------------
    def _list_invocations(
        self,
        backend: Any,
        command_id: str | None,
        instance_id: str | None,
        details: bool,
        filters: list[dict],
    ) -> dict:
        commands = backend.list_commands(command_id, None) if command_id else list(backend._commands)
        out = []
        with self._lock:
            for command in commands:
                for inv in command.invocations:
                    if instance_id and inv["InstanceId"] != instance_id:
                        continue
                    if not filters_match(command, inv, filters):
                        continue
                    out.append(invocation_entry(command, inv, details, self.region.name))
        out.sort(key=lambda e: e["RequestedDateTime"], reverse=True)
        return {"CommandInvocations": out}

    def _instance_information(self, filter_list: list[dict], filters: list[dict]) -> list[dict]:
        wanted_ids, ping = information_filters(filter_list, filters)
        out = []
        with self._lock:
            for agent in self.agents.values():
                if not agent.registered_at:
                    continue
                if wanted_ids is not None and agent.instance_id not in wanted_ids:
                    continue
                status = "Online" if agent.online else "ConnectionLost"
                if ping is not None and status not in ping:
                    continue
                out.append(instance_entry(agent, status, _now()))
        return out


def _targets(targets: list[dict], instance_id: str, tags: dict[str, str]) -> bool:
    """Association targets: every key must match (InstanceIds, or tag:<name> with one of the values)."""
    for target in targets:
        key, values = target.get("Key", ""), target.get("Values") or []
        if key == "InstanceIds":
            if instance_id not in values:
                return False
        elif key.startswith("tag:"):
            if tags.get(key[4:]) not in values:
                return False
        else:
            return False
    return bool(targets)


def _text(v: Any) -> str:
    if v is None:
        return ""
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _duration(d: datetime.timedelta) -> str:
    return f"PT{d.total_seconds():.3f}S"
