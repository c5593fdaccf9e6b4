"""Temperature scaling: fitted on held-out decisions, it recovers how overconfident a model is, and
the runtime applies the manifest's temperature to utterance probabilities."""

import json
import shutil

import numpy as np
import soundfile

from rtser import Recognizer
from training.calibration import calibration_report, expected_calibration_error, fit_temperature

from .conftest import DEFAULT_MODEL, SAMPLE


def _overconfident(n=3000, classes=6, factor=2.5, seed=0):
    """Targets drawn from softmax(z), and the probabilities of a model that reports softmax(factor z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, classes))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(classes, p=p) for p in true])
    reported = np.exp(factor * logits) / np.exp(factor * logits).sum(axis=1, keepdims=True)
    return reported, targets, true


def test_the_fitted_temperature_undoes_overconfidence():
    reported, targets, true = _overconfident()
    assert abs(fit_temperature(reported, targets) - 2.5) < 0.3
    report = calibration_report(reported, targets, np.arange(len(targets)) % 5)
    assert report["ece_after"] < report["ece_before"] / 3
    assert abs(report["ece_after"] - expected_calibration_error(true, targets)) < 0.03
    # one fold pooled (a run's first process, before the others): no other folds to measure "after" on
    alone = calibration_report(reported, targets, np.zeros(len(targets), int))
    assert alone["ece_after"] is None and alone["temperature"] == fit_temperature(reported, targets)


def test_the_manifest_temperature_scales_utterance_confidence(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    manifest = json.loads((model / "model.json").read_text())
    manifest["calibration"] = {"temperature": 3.0}
    (model / "model.json").write_text(json.dumps(manifest))
    audio = soundfile.read(SAMPLE, dtype="float32")[0]

    def utterance(path):
        recognizer = Recognizer(path)
        return next(e for e in recognizer.push(audio) + recognizer.flush() if e["type"] == "utterance")

    plain, scaled = utterance(None), utterance(str(model))
    assert plain["label"] == scaled["label"] and scaled["confidence"] < plain["confidence"]
    assert abs(sum(scaled["probs"].values()) - 1) < 1e-3
