"""``rtser bench`` prints its figures as JSON (the figures themselves are not asserted: no timed tests)."""

import json

from .conftest import run_rtser


def test_bench_reports_every_figure():
    done = run_rtser("bench", "--seconds", "10", timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    for key in ("pipeline_realtime_factor", "baseline_recompute_realtime_factor", "feature_ms_per_audio_second",
                "baseline_feature_ms_per_audio_second", "feature_speedup_vs_baseline", "model_latency_ms"):  # fmt: skip
        assert key in figures
    assert figures["threads"] == 1 and figures["audio_seconds"] == 10.0
    assert set(figures["model_latency_ms"]) == {"median", "p95"}
    assert "seconds" in figures["replay_3s_file"] and "peak_rss_mb" in figures["replay_3s_file"]
