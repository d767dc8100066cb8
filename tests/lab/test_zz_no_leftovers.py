"""Runs after the lab tier (files run in name order): nothing of any lab may remain on the machine."""

from __future__ import annotations

import pytest

from lab import host


@pytest.mark.lab
def test_nothing_left_behind(lab_machine: None) -> None:
    from lab.nodes import leftovers

    assert leftovers() == []


def test_a_scratch_root_left_on_run_is_reported(tmp_path, monkeypatch):
    # Given a machine with nothing of the lab on it but the documents' scratch root
    for finder in ("netns_names", "links", "iptables_rules", "cgroup_dirs"):
        monkeypatch.setattr(host, finder, lambda prefix: [])
    monkeypatch.setattr(host, "processes_under", lambda root: [])
    monkeypatch.setattr(host, "mounts_under", lambda root: [])
    monkeypatch.setattr(host, "LAB_ROOT", tmp_path / "lab")
    scratch = tmp_path / "swarmkeeper"
    monkeypatch.setattr(host, "SCRATCH_ROOT", scratch)
    scratch.mkdir()

    # When the leftovers are listed / Then the scratch root is one
    assert host.leftovers() == [f"directory {scratch}"]

    # and once it is gone, nothing is
    scratch.rmdir()
    assert host.leftovers() == []
