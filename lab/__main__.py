"""``python -m lab --scenario NAME``: set the lab up, run the scenario(s), print what an operator sees,
tear everything down; exit 1 if any expectation failed (2 if the lab cannot run here)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from lab.agent import AgentKnobs
from lab.alarms import AlarmKnobs
from lab.autoscaling import AutoScalingKnobs
from lab.cluster import REPO, Lab, LabConfig
from lab.events import Knobs
from lab.lambdas import LambdaKnobs
from lab.scenarios import SCENARIOS, Report, diagnostics, node_ls, run, timeline


def cannot_run() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, iptables, dockerd): run `sudo make lab`"
    missing = [
        c for c in ("dockerd", "docker", "ip", "iptables", "nsenter", "unshare") if not shutil.which(c)
    ]
    if missing:
        return f"missing {', '.join(missing)}: `sudo make lab` installs docker.io, iptables, busybox-static"
    return None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    p.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    p.add_argument("--cluster", help="which swarmkeeper-<C> stack in cdk.out (when there are several)")
    p.add_argument(
        "--template", type=Path, help="a template file instead of cdk.out/swarmkeeper-<C>.template.json"
    )
    p.add_argument("--cdk-out", type=Path, default=REPO / "cdk.out")
    p.add_argument("--subnet", default="10.99.0.0/24")
    p.add_argument("--bridge", default="skbr0")
    p.add_argument("--prefix", default="sk", help="names of everything the lab creates start with this")
    p.add_argument("--log-dir", type=Path, default=REPO / "lab-run")
    p.add_argument(
        "--registration-delay", type=float, default=3.0, help="seconds before an SSM agent registers"
    )
    p.add_argument("--duplicate", type=float, default=0.0, help="probability an event is delivered twice")
    p.add_argument("--delay", type=float, default=0.0, help="extra delivery delay, up to this many seconds")
    p.add_argument("--reorder", type=float, default=0.0, help="window (s) within which deliveries may swap")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--retry-delays", default="1,2", help="async retry delays in seconds (AWS: ~60,120)")
    p.add_argument("--heartbeat-scale", type=float, default=1.0, help="multiplies lifecycle HeartbeatTimeout")
    p.add_argument("--period-scale", type=float, default=0.05, help="multiplies alarm periods")
    p.add_argument(
        "--schedule-scale", type=float, default=1.0, help="multiplies schedule rates (0: on demand)"
    )
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiplies every scenario wait")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> LabConfig:
    return LabConfig(
        cdk_out=args.cdk_out,
        template=args.template,
        cluster=args.cluster,
        subnet=args.subnet,
        bridge=args.bridge,
        prefix=args.prefix,
        log_dir=args.log_dir,
        schedule_scale=args.schedule_scale,
        events=Knobs(duplicate=args.duplicate, delay=args.delay, reorder=args.reorder, seed=args.seed),
        lambdas=LambdaKnobs(retry_delays=tuple(float(x) for x in args.retry_delays.split(",") if x)),
        agent=AgentKnobs(registration_delay=args.registration_delay),
        autoscaling=AutoScalingKnobs(heartbeat_scale=args.heartbeat_scale),
        alarms=AlarmKnobs(period_scale=args.period_scale),
    )


def run_one(cfg: LabConfig, name: str, scale: float) -> Report:
    print(f"\n=== scenario {name}", flush=True)
    started = time.monotonic()
    with Lab(cfg) as lab:
        region = lab.region.local_url if lab.region else ""
        print(
            f"lab up in {time.monotonic() - started:.1f}s: region {region}, "
            f"{len(lab.stack.functions) if lab.stack else 0} functions, "
            f"{len(lab.stack.rules) if lab.stack else 0} rules",
            flush=True,
        )
        report = run(lab, name, scale)
        print("\n--- operators' timeline (swarmkeeper events)")
        print(timeline(lab))
        print("\n--- docker node ls (leader)")
        print(node_ls(lab).rstrip())
        if report.notes:
            print("\n--- notes")
            print("\n\n".join(report.notes))
        print("\n--- control plane")
        print(diagnostics(lab))
        lab.dump(cfg.log_dir / name)
        print(f"(details in {cfg.log_dir / name}/)")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "urllib3", "werkzeug", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    why = cannot_run()
    if why:
        print(f"lab: cannot run here: {why}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports: list[Report] = []
    cfg = config(args)
    try:
        for name in names:
            reports.append(run_one(cfg, name, args.timeout_scale))
    except KeyboardInterrupt:
        print("\nlab: interrupted; torn down", file=sys.stderr)
        return 130
    print("\n=== summary")
    for r in reports:
        status = "PASS" if r.ok else "FAIL"
        print(f"{status}  {r.scenario:<17} {r.seconds:6.1f}s  {r.error or ''}")
        for c in r.checks:
            if not c.ok:
                print(f"      failed: {c.name} {('— ' + c.detail) if c.detail else ''}"[:400])
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
