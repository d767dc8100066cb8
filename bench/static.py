"""The static part (no root, quick): cold import of the heaviest handler against a bare ``import boto3``
in fresh Lambda-like interpreters; what is deployed per function (function code + layers)."""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench.figures import Figure, Results, median, ratio
from bench.paths import REPO, STACK_TEMPLATE


def _template() -> dict:
    return json.loads(STACK_TEMPLATE.read_text())


def _asset_dir(resource: dict, key: str) -> Path | None:
    """cdk.out/asset.<hash> of a function's Code / a layer's Content (the hash is the S3 key)."""
    meta = (resource.get("Metadata") or {}).get("aws:asset:path")
    if meta:
        return REPO / "cdk.out" / meta
    s3_key = (resource["Properties"].get(key) or {}).get("S3Key")
    if isinstance(s3_key, str):
        d = REPO / "cdk.out" / f"asset.{s3_key.removesuffix('.zip')}"
        return d if d.is_dir() else None
    return None


def deployed_functions() -> dict[str, dict]:
    """Function name (functions/<name>) -> {"asset": dir, "layers": [our layer dirs], "env": {...}}."""
    res = _template()["Resources"]
    layer_dirs = {
        k: d
        for k, r in res.items()
        if r["Type"] == "AWS::Lambda::LayerVersion" and (d := _asset_dir(r, "Content")) is not None
    }
    sources = {
        d.name: (d / "handler.py").read_bytes()
        for d in (REPO / "functions").iterdir()
        if (d / "handler.py").exists()
    }
    out = {}
    for r in res.values():
        if r["Type"] != "AWS::Lambda::Function":
            continue
        asset = _asset_dir(r, "Code")
        if asset is None or not (asset / "handler.py").exists():
            continue
        code = (asset / "handler.py").read_bytes()
        name = next((n for n, src in sources.items() if src == code), asset.name)
        props = r["Properties"]
        env = function_env((props.get("Environment") or {}).get("Variables", {}))
        layers = [
            layer_dirs[x["Ref"]]
            for x in props.get("Layers", [])
            if isinstance(x, dict) and x.get("Ref") in layer_dirs
        ]
        out[name] = {"asset": asset, "layers": layers, "env": env, "runtime": props.get("Runtime", "")}
    return out


def function_env(variables: dict) -> dict[str, str]:
    """A function's environment as the template gives it, a value of the right shape for each reference."""
    return {k: v if isinstance(v, str) else _PLACEHOLDERS.get(k, "x") for k, v in variables.items()}


_PLACEHOLDERS = {
    "STEP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/swarmkeeper-demo-steps",
    "COMMAND_OUTPUT_BUCKET": "swarmkeeper-demo-output",
    "STACKS_BUCKET": "swarmkeeper-demo-stacks",
    "ECR_REGISTRY": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "LOAD_BALANCER_ARN": (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/swarmkeeper-demo/0123456789abcdef"
    ),
    "LOAD_BALANCER_SECURITY_GROUP": "sg-0123456789abcdef0",
    "TARGET_SECURITY_GROUP": "sg-0123456789abcdef1",
    "VPC_ID": "vpc-0123456789abcdef0",
}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _dist_closure(root: str, extras: tuple[str, ...] = ()) -> list[str]:
    from packaging.requirements import Requirement

    seen: dict[str, None] = {}
    todo = [(root, extras)]
    while todo:
        name, ex = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen[key] = None
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in (*ex, "")):
                todo.append((r.name, tuple(r.extras)))
    return list(seen)


def _dist_bytes(name: str) -> int:
    dist = importlib.metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            total += p.stat().st_size
    return total


def package_sizes() -> dict:
    fns = deployed_functions()
    closure = _dist_closure("aws-lambda-powertools", ("tracer",))
    sizes = {d: _dist_bytes(d) for d in closure}
    runtime_provided = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
    powertools_all = sum(sizes.values())
    powertools_no_sdk = sum(v for k, v in sizes.items() if k not in runtime_provided)
    per_fn = {}
    for name, f in fns.items():
        per_fn[name] = {
            "function": dir_bytes(f["asset"]),
            "layer": sum(dir_bytes(x) for x in f["layers"]),
        }
    return {
        "functions": per_fn,
        "powertools_dists": sizes,
        "powertools_bytes": powertools_all,
        "powertools_without_runtime_sdk_bytes": powertools_no_sdk,
    }


_IMPORT_PROBE = r"""
import sys, time
sys.path[:0] = {path!r}
t = time.perf_counter()
import {module}
print(time.perf_counter() - t)
"""


def _site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _fresh_python(code: str, env: dict[str, str], what: str) -> str:
    """stdout of ``code`` in a fresh, isolated interpreter (no site, no user paths) with ``env``."""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-800:]}")
    return out.stdout


def cold_import(module: str, path: list[str], env: dict[str, str]) -> float:
    out = _fresh_python(_IMPORT_PROBE.format(path=path, module=module), env, f"import {module}")
    return float(out.strip().splitlines()[-1])


_STAGES = r"""
import sys, time
sys.path[:0] = {path!r}
t = [time.perf_counter()]
import boto3
t.append(time.perf_counter())
import aws_lambda_powertools.logging, aws_lambda_powertools.metrics, aws_lambda_powertools.utilities.typing
import aws_lambda_powertools.utilities.idempotency
t.append(time.perf_counter())
from aws_lambda_powertools import Tracer
Tracer(patch_modules=("botocore",))
t.append(time.perf_counter())
import handler
t.append(time.perf_counter())
print(" ".join(str(b - a) for a, b in zip(t, t[1:])))
"""
STAGES = (
    "boto3",
    "Powertools: Logger, Metrics, idempotency",
    "Powertools Tracer: X-Ray SDK and its recorder",
    "the handler itself: swarmkeeper layer + function code (+ anything not above)",
)


def import_breakdown(path: list[str], env: dict[str, str]) -> list[float]:
    """Seconds per stage (``STAGES``) of importing the handler, one stage after the other."""
    return [float(x) for x in _fresh_python(_STAGES.format(path=path), env, "import stages").split()]


def lambda_env(fn: dict) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "swarmkeeper-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.get('runtime') or 'python3.13'}",
        "LAMBDA_TASK_ROOT": str(fn["asset"]),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        **fn["env"],
    }


def static_part(res: Results, runs: int) -> None:
    fns = deployed_functions()
    site = _site_packages()
    # 1) which handler is heaviest (a few runs each), 2) it against boto3, interleaved, many runs
    scout = {}
    for name, fn in sorted(fns.items()):
        path = [str(fn["asset"]), *[str(x / "python") for x in fn["layers"]], site]
        scout[name] = median([cold_import("handler", path, lambda_env(fn)) for _ in range(3)])
    heaviest = max(scout, key=lambda k: scout[k] or 0)
    fn = fns[heaviest]
    path = [str(fn["asset"]), *[str(x / "python") for x in fn["layers"]], site]
    handler_t, boto_t = [], []
    for _ in range(max(5, 5 * runs)):
        handler_t.append(cold_import("handler", path, lambda_env(fn)))
        boto_t.append(cold_import("boto3", [site], lambda_env(fn)))
    h, b = median(handler_t), median(boto_t)
    # the spread: each interleaved pair's own ratio, its quartiles
    pairs = [x / y for x, y in zip(handler_t, boto_t, strict=True) if x and y]
    low, _, high = statistics.quantiles(pairs, n=4) if len(pairs) >= 2 else (None, None, None)
    stages = [import_breakdown(path, lambda_env(fn)) for _ in range(max(5, 3 * runs))]
    res.extra["cold_import"] = {
        "stages_ms": {k: 1000 * (median([x[i] for x in stages]) or 0) for i, k in enumerate(STAGES)},
        "scout_s": scout,
        "heaviest": heaviest,
        "handler_s": h,
        "boto3_s": b,
        "samples": len(handler_t),
        "pair_ratio_quartiles": [low, high],
    }
    res.add(
        Figure(
            "cold_import_ratio",
            ratio(h, b),
            "<= 1.5",
            f"median of {len(handler_t)} fresh `python -I -S` interpreters each (handler and bare "
            "`import boto3` interleaved); sys.path = function asset + layer (cdk.out) + venv site-packages; "
            "environment = the template's function Environment + the variables Lambda sets; this venv's "
            "Python (the functions run python3.13 on Lambda)",
            f"`{heaviest}` handler {h * 1000:.0f} ms / `import boto3` {b * 1000:.0f} ms; spread: the pairs' "
            f"own ratios have quartiles {low or 0:.2f}-{high or 0:.2f}",
        )
    )
    sizes = package_sizes()
    res.extra["package"] = sizes
    per = {k: (v["function"] + v["layer"] + sizes["powertools_bytes"]) for k, v in sizes["functions"].items()}
    biggest = max(per, key=lambda k: per[k]) if per else ""
    res.add(
        Figure(
            "package_mb",
            round(per[biggest] / 1e6, 2) if per else None,
            "",
            "bytes of the function's cdk.out asset + the swarmkeeper layer asset + the installed size of "
            "`aws-lambda-powertools[tracer]==3.37.0` and its dependency closure in the venv (what "
            "`pip install --target` for that layer would contain; the AWS-published layer is not in the "
            "repo)",
            f"largest function `{biggest}`: function {sizes['functions'][biggest]['function'] / 1e3:.1f} kB, "
            f"swarmkeeper layer {sizes['functions'][biggest]['layer'] / 1e3:.0f} kB, Powertools closure "
            f"{sizes['powertools_bytes'] / 1e6:.1f} MB "
            f"({sizes['powertools_without_runtime_sdk_bytes'] / 1e6:.1f} MB "
            "without botocore & co., which the Lambda runtime already ships)"
            if per
            else "",
        )
    )
