"""The lab scenarios through their CLI over a real lab (``gateway-lab up`` in a tmp workdir).

Request counts are raised above the CLI default where a scenario's tolerance is statistical
(weighted and priority picks are random draws): 800 requests put a 50/50 split's ±7 points
at ~4 standard deviations, 600 put failover's ±8 points at ~3.9.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from gateway_lab.scenario_failover import predicted_local
from tests.lab.labkit import RunningLab

pytestmark = pytest.mark.lab


@pytest.fixture
def scenario(lab: RunningLab, measured: Callable[[str], None]) -> Callable[..., str]:
    """Run ``gateway-lab scenario NAME ARGS``; its output is reported with the run's results."""

    def run(name: str, *args: str) -> str:
        result = lab.cli("scenario", name, *args)
        output = result.stdout + result.stderr
        measured(output)
        assert result.returncode == 0, output
        assert f"scenario {name}: PASS" in output
        return output

    return run


def test_canary_splits_follow_the_override(lab: RunningLab, scenario: Callable[..., str]) -> None:
    """90/10, 50/50 and 0/100 each measured within tolerance; the override is removed."""
    output = scenario("canary", "--requests", "800")
    for split in ("90/10", "50/50", "0/100"):
        row = re.search(rf"^{split}\s+\S+s\s+(\d+)\s+(\d+)\s+(\d+)\s.*\s(ok|OFF)$", output, re.M)
        assert row is not None, output
        v1, v2, other = (int(g) for g in row.groups()[:3])
        assert (v1 + v2, other, row.group(4)) == (800, 0, "ok")
    assert re.search(r"^0/100\s+\S+s\s+0\s+800\s", output, re.M)
    assert not (lab.workdir / "overrides" / "cluster-2" / "canary-helloworld.yaml").exists()


def test_sticky_cookie_pins_a_pod(lab: RunningLab, scenario: Callable[..., str]) -> None:
    """20 requests with the generated cookie reach one pod; without it all 3 pods serve."""
    output = scenario("sticky")
    assert re.search(r"with the cookie: 20/20 on echo-v1-\d: ok", output)
    assert "without it: 3/3 pods used: ok" in output


def test_failover_follows_envoy_priority_math(
    lab: RunningLab, scenario: Callable[..., str]
) -> None:
    """Each step's local share is within 8 points of min(100, 140*healthy//14); none fail."""
    output = scenario("failover", "--requests", "600")
    rows = re.findall(
        r"^(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+[\d.]+\s+\d+\s+(ok|OFF)\s",
        output,
        re.M,
    )
    assert [int(r[0]) for r in rows] == list(range(14, -1, -1)), output
    for healthy, local, remote, failed, share, envoy, verdict in rows:
        assert int(envoy) == predicted_local(int(healthy), 14)
        assert int(local) + int(remote) == 600 and int(failed) == 0
        assert abs(float(share) - int(envoy)) <= 8, (healthy, share, envoy)
        assert verdict == "ok"
    assert re.search(r"^10\s+600\s+0\s+0\s+100\.0\s+100\s", output, re.M)
    assert re.search(r"^0\s+0\s+600\s+0\s+0\.0\s+0\s", output, re.M)
    assert "restored: P0 14/14 load 100 | P1 4/4 load 0" in output


def test_gateway_loss_moves_traffic_without_failures_after_detection(
    lab: RunningLab, scenario: Callable[..., str]
) -> None:
    """Killing cluster-1's Tier-2 moves /user to cluster-2; no GET fails after detection."""
    output = scenario("gateway-loss")
    counts = re.search(r"failed before detection: (\d+); failed after detection: (\d+)", output)
    assert counts is not None, output
    assert int(counts.group(2)) == 0
    served = re.search(r"served until the restart: \{'cluster-2': (\d+)\}", output)
    assert served is not None and int(served.group(1)) >= 200, output
    assert re.search(r"traffic back on cluster-1 [\d.]+s after the restart", output)


def test_down_stops_the_lab_and_every_child(lab: RunningLab) -> None:
    """gateway-lab down asks the supervisor to stop; it exits 0 and leaves no process."""
    pids = [p["pid"] for p in lab.status()["processes"]]
    result = lab.cli("down")
    assert result.returncode == 0, result.stderr
    assert "lab stopped" in result.stdout
    assert lab.wait_stopped() == 0
    lab.child_pids += pids
    assert lab.alive_children() == []
    assert lab.cli("status").returncode == 1
