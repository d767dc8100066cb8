"""The second pass of provisioning, once every resource exists: the functions the lab runs (their
code and layer directories found in the repository), the rules with their targets, and the SQS
event sources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lab.events import RuleSpec
from lab.lambdas import FunctionSpec, QueueSource
from lab.provisioned import Provisioned
from lab.template import Template, TemplateError


class ProvisionWiring:
    """Provisioner's functions, rules and event sources, read from the template and what it created."""

    t: Template
    repo: Path
    cdk_out: Path | None
    phys: dict[str, Any]
    attrs: dict[str, dict[str, Any]]
    out: Provisioned
    # and, from Provisioner: _props(resource) (its properties resolved) and client(service)

    def _layer_dirs(self, layer_arns: list[str]) -> list[Path]:
        dirs: list[Path] = []
        local_layers = sorted((self.repo / "layers").glob("*/python"))
        for arn in layer_arns:
            lid = next((k for k, v in self.phys.items() if v == arn), None)
            if lid is None:
                continue  # a public layer (Powertools): the venv's site-packages stands in
            res = self.t.resources[lid]
            asset = (res.metadata or {}).get("aws:asset:path")
            chosen = None
            if asset and self.cdk_out and (self.cdk_out / asset).is_dir():
                for local in local_layers:
                    pkgs = [d.name for d in local.iterdir() if d.is_dir() and not d.name.startswith("__")]
                    if any((self.cdk_out / asset / "python" / pkg).exists() for pkg in pkgs):
                        chosen = local
            if chosen is None and len(local_layers) == 1:
                chosen = local_layers[0]
            if chosen is None:
                self.out.warnings.append(f"layer {lid}: no local source found; relying on site-packages")
            elif chosen not in dirs:
                dirs.append(chosen)
        return dirs

    def _code_dir(self, res: Any, name: str) -> Path:
        functions = self.repo / "functions"
        candidates = sorted(d for d in functions.iterdir() if d.is_dir()) if functions.is_dir() else []
        asset = (res.metadata or {}).get("aws:asset:path")
        if asset and self.cdk_out and (self.cdk_out / asset).is_dir():
            adir = self.cdk_out / asset
            for d in candidates:
                files = [f for f in d.glob("*.py")]
                if files and all(
                    (adir / f.name).is_file() and (adir / f.name).read_text() == f.read_text() for f in files
                ):
                    return d
        norm = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())  # noqa: E731
        hints = [
            name,
            (res.metadata or {}).get("aws:cdk:path", ""),
            res.logical_id,
            str(res.properties.get("Description", "")),
        ]
        for d in sorted(candidates, key=lambda d: -len(d.name)):
            key = norm(d.name)
            for hint in hints:
                parts = [norm(x) for x in re.split(r"[/]", str(hint))]
                if any(p == key or p.endswith(key) or p.startswith(key) for p in parts) or key in norm(
                    str(hint)
                ):
                    return d
        raise TemplateError(f"function {res.logical_id} ({name}): cannot tell which functions/<name> it runs")

    def _functions(self) -> None:
        invoke_configs = {}
        for res in self.t.of_type("AWS::Lambda::EventInvokeConfig"):
            p = self._props(res)
            invoke_configs[p["FunctionName"]] = p
        for res in self.t.of_type("AWS::Lambda::Function"):
            p = self._props(res)
            name = self.phys[res.logical_id]
            env = {k: str(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
            cfg = invoke_configs.get(name) or invoke_configs.get(self.attrs[res.logical_id]["Arn"]) or {}
            on_failure = ((cfg.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            spec = FunctionSpec(
                name=name,
                logical_id=res.logical_id,
                arn=self.attrs[res.logical_id]["Arn"],
                code_dir=self._code_dir(res, name),
                layer_dirs=self._layer_dirs([str(x) for x in p.get("Layers") or []]),
                handler=p.get("Handler", "handler.lambda_handler"),
                environment=env,
                timeout=float(p.get("Timeout", 3)),
                memory=int(p.get("MemorySize", 128)),
                dead_letter_arn=(p.get("DeadLetterConfig") or {}).get("TargetArn"),
                on_failure_arn=on_failure,
                max_retries=int(cfg.get("MaximumRetryAttempts", 2)),
            )
            self.out.functions[name] = spec

    def _function_for(self, arn: str) -> str | None:
        for spec in self.out.functions.values():
            if arn in (spec.arn, spec.name) or arn.startswith(spec.arn + ":"):
                return spec.name
        return None

    def _rules(self) -> None:
        for res in self.t.of_type("AWS::Events::Rule"):
            p = self._props(res)
            name = self.phys[res.logical_id]
            bus = str(p.get("EventBusName") or "default").rsplit("/", 1)[-1]
            targets = []
            log_targets = []
            for target in p.get("Targets") or []:
                fn = self._function_for(str(target.get("Arn")))
                if fn:
                    targets.append(fn)
                elif ":log-group:" in str(target.get("Arn")):
                    log_targets.append({"Id": str(target.get("Id", "logs")), "Arn": str(target["Arn"])})
                else:
                    self.out.warnings.append(
                        f"rule {name}: target {target.get('Arn')} is not a stack function"
                    )
            pattern = p.get("EventPattern")
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            kw: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED")}
            if bus != "default":
                kw["EventBusName"] = bus
            if pattern:
                kw["EventPattern"] = json.dumps(pattern)
            if p.get("ScheduleExpression"):
                kw["ScheduleExpression"] = p["ScheduleExpression"]
            self.client("events").put_rule(**kw)
            if log_targets:
                # moto's EventBridge writes each event the rule matches to the log group, as AWS does.
                bus_kw = {"EventBusName": bus} if bus != "default" else {}
                self.client("events").put_targets(Rule=name, Targets=log_targets, **bus_kw)
            self.out.rules.append(
                RuleSpec(
                    name=name,
                    arn=self.attrs[res.logical_id]["Arn"],
                    bus=bus,
                    targets=targets,
                    pattern=pattern,
                    schedule=p.get("ScheduleExpression"),
                    enabled=kw["State"] == "ENABLED",
                )
            )

    def _event_sources(self) -> None:
        for res in self.t.of_type("AWS::Lambda::EventSourceMapping"):
            p = self._props(res)
            fn = self._function_for(str(p["FunctionName"]))
            src_arn = str(p.get("EventSourceArn", ""))
            if not fn or src_arn not in self.out.queues:
                self.out.warnings.append(
                    f"event source {res.logical_id}: only SQS sources of stack functions run"
                )
                continue
            self.out.queue_sources.append(
                QueueSource(
                    function=fn,
                    queue_url=self.out.queues[src_arn],
                    queue_arn=src_arn,
                    batch_size=int(p.get("BatchSize", 10)),
                    report_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                    enabled=str(p.get("Enabled", "true")).lower() != "false",
                )
            )
