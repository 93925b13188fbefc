"""The runtime's sandbox hooks: the warm-up leaves no trace a run could see."""

from __future__ import annotations

import logging
import sys

import pytest

from fulmen.runtime.entry import warm_up


def test_warm_up_prints_nothing_and_leaves_streams_and_logging_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before = (sys.stdout, sys.stderr, list(root.handlers), root.level)
    warm_up()
    assert (sys.stdout, sys.stderr, list(root.handlers), root.level) == before
    assert capsys.readouterr() == ("", "")
