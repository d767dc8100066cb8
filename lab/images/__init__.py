"""The lab's service images: the six services of the seed stack (examples/seed-stack.yml), made on
each node without a registry.

One ``docker load`` per node of an archive built here (docker's image archive format): two layers, the
busybox rootfs that ``swarmkeeper/busybox:lab`` is imported from and the service scripts of ``srv/``
at ``/srv``, and one image config per tag, all sharing those layers. A version is a tag
(``swarmkeeper/web:1``); a ``-broken`` tag starts a container that exits at once, the version a
rolling update must roll back from. What each service does is in its script: web asks api, api asks
db and cache, the worker reads the cache and sends each line to the logger, all by the services'
names on their overlay network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.host import LabError
from lab.nodes import _busybox_tarball

SCRIPTS = Path(__file__).resolve().parent / "srv"
REPOSITORY = "swarmkeeper"
# Applets the scripts call that the base rootfs does not link.
APPLETS = ("httpd", "awk", "sed", "nslookup")
CREATED = "2026-01-01T00:00:00Z"  # fixed: the same scripts always make the same image ids


@dataclass(frozen=True)
class ServiceImage:
    name: str  # the repository's last part: swarmkeeper/<name>
    version: str  # the tag
    entrypoint: str  # a script in srv/
    port: int | None = None

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}/{self.name}:{self.version}"


IMAGES = (
    ServiceImage("web", "1", "web", 80),
    ServiceImage("web", "2-broken", "broken", 80),
    ServiceImage("api", "1", "api", 8080),
    ServiceImage("db", "1", "db", 5432),
    ServiceImage("cache", "1", "cache", 6379),
    ServiceImage("worker", "1", "worker"),
    ServiceImage("logger", "1", "logger", 5140),
)


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def _scripts_layer() -> bytes:
    """``/srv`` (the scripts, executable) and the applet links the scripts need, reproducibly."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            add(link)
        for path in sorted([SCRIPTS, *SCRIPTS.rglob("*")]):
            name = "srv" + ("/" + path.relative_to(SCRIPTS).as_posix() if path != SCRIPTS else "")
            info = tarfile.TarInfo(name)
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                add(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644 if path.name == "lib.sh" else 0o755
                add(info, data)
    return buffer.getvalue()


def _config(image: ServiceImage, diff_ids: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Env": ["PATH=/bin", f"SERVICE={image.name}", f"VERSION={image.version}"],
        "Entrypoint": [f"/srv/{image.entrypoint}"],
        "WorkingDir": "/",
        "Labels": {"swarmkeeper.lab.image": image.tag},
    }
    if image.port:
        config["ExposedPorts"] = {f"{image.port}/tcp": {}}
    return {
        "architecture": _architecture(),
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": CREATED, "created_by": "swarmkeeper lab: static busybox rootfs"},
            {"created": CREATED, "created_by": f"swarmkeeper lab: /srv, entrypoint {image.entrypoint}"},
        ],
    }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def archive(directory: Path) -> Path:
    """The archive ``docker load`` reads (built once per lab directory)."""
    path = directory / "service-images.tar"
    if path.exists():
        return path
    layers = [_busybox_tarball(directory).read_bytes(), _scripts_layer()]
    digests = [hashlib.sha256(layer).hexdigest() for layer in layers]
    manifest = []
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for digest, layer in zip(digests, layers, strict=True):
            _add_bytes(tar, f"{digest}/layer.tar", layer)
        for image in IMAGES:
            config = json.dumps(_config(image, [f"sha256:{d}" for d in digests]), sort_keys=True).encode()
            name = f"{hashlib.sha256(config).hexdigest()}.json"
            _add_bytes(tar, name, config)
            manifest.append(
                {"Config": name, "RepoTags": [image.tag], "Layers": [f"{d}/layer.tar" for d in digests]}
            )
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    tmp.replace(path)
    return path


def load_service_images(node: Any) -> None:
    """Give a lab node every service image (one ``docker load``; no registry involved)."""
    proc = node.docker("load", "-q", "-i", str(archive(node.network.root)), timeout=120)
    if proc.returncode != 0:
        raise LabError(f"docker load of the service images on {node.name} failed: {proc.stderr.strip()}")
