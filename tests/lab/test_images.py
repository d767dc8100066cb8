"""The seed stack's images: one archive ``docker load`` reads, every tag the example Compose file
names, the broken version really a different entrypoint. Runs anywhere (no dockerd); the seed
scenario runs the images on real nodes."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab.nodes
from lab.images import IMAGES, SCRIPTS, archive
from lab.scenarios.seed import BROKEN, EXAMPLE, GOOD


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tarfile.TarFile]:
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"\x7fELF not really busybox")
    monkeypatch.setattr(lab.nodes, "BUSYBOX", fake_busybox)
    with tarfile.open(archive(tmp_path)) as tar:
        yield tar


def _json(tar: tarfile.TarFile, name: str) -> object:
    member = tar.extractfile(name)
    assert member is not None, name
    return json.load(member)


def test_every_tag_has_a_config_whose_layers_are_in_the_archive(loaded: tarfile.TarFile) -> None:
    # Given the archive / When docker load reads its manifest
    manifest = _json(loaded, "manifest.json")
    assert isinstance(manifest, list)
    # Then every image is there once, and each config's diff ids are the digests of its layer files
    assert sorted(t for m in manifest for t in m["RepoTags"]) == sorted(i.tag for i in IMAGES)
    for entry in manifest:
        config = _json(loaded, entry["Config"])
        assert isinstance(config, dict)
        member = loaded.extractfile(entry["Config"])
        assert member is not None
        assert entry["Config"] == hashlib.sha256(member.read()).hexdigest() + ".json"
        layers = [loaded.extractfile(name) for name in entry["Layers"]]
        digests = [f"sha256:{hashlib.sha256(f.read()).hexdigest()}" for f in layers if f is not None]
        assert config["rootfs"]["diff_ids"] == digests and len(digests) == 2
        assert config["os"] == "linux"


def test_each_entrypoint_is_a_script_of_the_image_and_the_broken_version_exits(
    loaded: tarfile.TarFile,
) -> None:
    # Given the scripts layer (the second of every image)
    manifest = _json(loaded, "manifest.json")
    assert isinstance(manifest, list)
    scripts = loaded.extractfile(manifest[0]["Layers"][1])
    assert scripts is not None
    with tarfile.open(fileobj=io.BytesIO(scripts.read())) as layer:
        files = {m.name: m for m in layer.getmembers()}
    # Then each image's entrypoint is an executable script in it
    by_tag = {t: _json(loaded, m["Config"]) for m in manifest for t in m["RepoTags"]}
    for tag, config in by_tag.items():
        assert isinstance(config, dict)
        (entrypoint,) = config["config"]["Entrypoint"]
        member = files[entrypoint.lstrip("/")]
        assert member.mode & 0o111, f"{tag}: {entrypoint} not executable"
    # and the broken version of web starts a script that exits non-zero, the good one serves
    good, broken = by_tag[GOOD], by_tag[BROKEN]
    assert isinstance(good, dict) and isinstance(broken, dict)
    assert good["config"]["Entrypoint"] != broken["config"]["Entrypoint"]
    assert re.search(r"^exit 1$", (SCRIPTS / "broken").read_text(), re.M)
    assert "httpd" in (SCRIPTS / "web").read_text()
    # and the applets the scripts call are linked to busybox
    for applet in ("httpd", "awk", "sed", "nslookup"):
        assert files[f"bin/{applet}"].linkname == "busybox"


def test_the_example_compose_file_names_only_images_the_lab_makes() -> None:
    # Given the example Compose file / Then every image it names is one the lab loads on its nodes
    named = set(re.findall(r"^\s+image:\s*(\S+)", EXAMPLE.read_text(), re.M))
    assert named and named <= {i.tag for i in IMAGES}
    assert GOOD in named and BROKEN not in named


def test_the_archive_is_the_same_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two lab directories / When each builds the archive / Then the image ids are the same
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"busybox")
    monkeypatch.setattr(lab.nodes, "BUSYBOX", fake_busybox)
    ids = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        with tarfile.open(archive(tmp_path / name)) as tar:
            manifest = _json(tar, "manifest.json")
        assert isinstance(manifest, list)
        ids.append([m["Config"] for m in manifest])
    assert ids[0] == ids[1]
