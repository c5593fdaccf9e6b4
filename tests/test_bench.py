"""``rtser bench`` prints its figures as JSON (the figures themselves are not asserted: no timed tests)."""

import json

from .conftest import DEFAULT_MODEL, run_rtser


def test_bench_reports_every_figure_and_times_a_compared_model_in_the_same_run():
    done = run_rtser("bench", "--seconds", "10", "--compare", DEFAULT_MODEL, "--batch-seconds", "0.5", timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    for key in ("pipeline_x_realtime", "pipeline_cpu_ms_per_audio_second", "baseline_recompute_x_realtime", "feature_ms_per_audio_second",
                "baseline_feature_ms_per_audio_second", "feature_speedup_vs_baseline", "speech_detector_ms_per_audio_second"):  # fmt: skip
        assert figures[key] > 0, key
    stages, alone, measured = figures["stages_ms_per_audio_second"], figures["stages_alone_ms_per_audio_second"], figures["measured"]
    # the stages are timed inside the pipeline's own pass: together they are its CPU time
    assert set(stages) == {"features", "speech_detector", "model", "windows_and_events", "audio_in"}
    assert all(stages[name] > 0 for name in ("features", "speech_detector", "model", "windows_and_events"))
    assert abs(sum(stages.values()) - figures["pipeline_cpu_ms_per_audio_second"]) < 0.01
    assert set(alone) == {"features", "pitch", "speech_detector", "model"}  # the shipped model reads pitch
    # the model alone counts the windows the pipeline judged: the sample's pauses hold none
    assert 0 < measured["windows_judged_per_audio_second"] < 1 / measured["hop_seconds"]
    assert abs(alone["model"] - figures["model"]["cpu_ms_per_window"]["median"] * measured["windows_judged_per_audio_second"]) < 0.01
    assert measured["threads"] == 1 and measured["audio_seconds"] == 10.0 and measured["push_seconds"] > 0 and measured["batch_seconds"] == 0.5
    assert {"numpy", "onnxruntime"} <= set(measured["versions"])
    for model in (figures["model"], figures["compared_model"]):
        assert set(model["cpu_ms_per_window"]) == {"median", "p95"} and model["file_kb"] > 0
    assert figures["compared_model"]["times_slower_per_window"] > 0
    assert "seconds" in figures["replay_3s_file"] and "peak_rss_mb" in figures["replay_3s_file"]
