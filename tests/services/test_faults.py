"""Fault points: off unless a test arms them, and armed only with points the code has."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services import faults
from tests.conftest import ROOT


def test_no_fault_point_is_armed_in_a_normal_process() -> None:
    """Without DATELINE_FAULT_POINTS nothing is armed, and reaching a point does nothing."""
    assert faults.ARMED == {}
    faults.reached("api.replying")


def test_an_unknown_point_or_a_bad_count_is_refused() -> None:
    """A typo in DATELINE_FAULT_POINTS fails the start instead of arming nothing silently."""
    assert faults._armed("api.replying=3, gateway.delivering=1") == {
        "api.replying": 3,
        "gateway.delivering": 1,
    }
    for spec in ("api.reply=3", "api.replying=0", "api.replying", "projector.written=x"):
        with pytest.raises(ValueError, match="DATELINE_FAULT_POINTS"):
            faults._armed(spec)


def test_an_armed_point_kills_its_process_on_the_armed_pass() -> None:
    """The third pass of a point armed with =3 ends the process with SIGKILL, not before."""
    code = (
        "from services import faults\n"
        "for n in range(1, 5):\n"
        "    print(n, flush=True)\n"
        "    faults.reached('projector.written')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DATELINE_FAULT_POINTS": "projector.written=3", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.stdout.split() == ["1", "2", "3"]
    assert run.returncode == -9
