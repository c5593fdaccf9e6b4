"""The soak script on an hour of real speech and silence (its second half is where probabilities
must have settled: half an hour left them at the 0.01 bound): every period gives the same events,
times do not drift, memory does not grow (the README's figures come from its 10-hour run)."""

import json
import subprocess
import sys

from .conftest import ROOT


def test_an_hour_soak_keeps_every_event_and_its_time():
    done = subprocess.run([sys.executable, "scripts/soak.py", "--hours", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["passed"] and figures["events"] == figures["expected_events"] > 1000
    assert figures["periods_differing"] == 0 and figures["max_time_drift_s"] == 0.0
    assert figures["rss_growth_mb"] < 2.0
