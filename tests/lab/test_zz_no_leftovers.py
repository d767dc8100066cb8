"""Runs after the lab tier (files run in name order): nothing of any lab may remain on the machine."""

from __future__ import annotations

import pytest


@pytest.mark.lab
def test_nothing_left_behind(lab_machine: None) -> None:
    from lab.nodes import leftovers

    assert leftovers() == []
