"""Training on real corpora: loaders, speaker-independent folds, and a smoke run train -> int8 -> rtser."""

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from rtser.features import FeatureConfig, extract
from rtser.manifest import sha256_of
from rtser.pipeline import DEFAULT_MODEL
from rtser.schema import ConfigError
from training.config import load_config, recipe_features
from training.corpora import DataMissing, data_root, load_corpora, load_emodb, load_ravdess
from training.evaluate import NO_DECISION, scores
from training.folds import corpus_folds, final_split, make_folds
from training.models import ARCHITECTURES
from training.models.base import Averaged
from training.models.statistics import time_statistics
from training.sampling import balanced_weights, epoch_order
from training.audio_cache import load_waves
from training.augment import CHANNELS, Augmenter
from training.dataset import prepare
from training.distillation import check_teachers, distillation_loss, load_teachers
from training.feature_bank import FeatureBank
from training.train import Trainer, _claim, mixup, speaker_indices
from training.windows import stream_positions

from .conftest import ROOT, SAMPLE, run_rtser

SHARED = ["anger", "disgust", "fear", "happiness", "neutral", "sadness"]


def test_corpora_load_with_design_labels_and_speakers():
    emodb, ravdess = load_emodb(), load_ravdess()
    assert len(emodb) == 535 and len(ravdess) == 1440
    assert {u.speaker for u in emodb} == {f"emodb-{s}" for s in "03 08 09 10 11 12 13 14 15 16".split()}
    assert len({u.speaker for u in ravdess}) == 24
    assert {u.label for u in emodb} == {"anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"}
    assert {u.label for u in ravdess} == {"neutral", "calm", "happiness", "sadness", "anger", "fear", "disgust", "surprise"}
    assert sum(u.label == "boredom" for u in emodb) == 81
    assert all(u.female == (int(u.speaker[-2:]) % 2 == 0) for u in ravdess)


def _listed_corpus(root, corpus: str, rows: list[tuple[str, str, str]]) -> None:
    """A corpus folder as ../shared/tools/add_corpora.py builds it: real speech (EMO-DB clips) as
    16 kHz FLAC under speaker folders, and its files.csv."""
    import soundfile

    clips = sorted(glob.glob(os.path.join(data_root(), "emodb", "wav", "*.wav")))
    lines = ["file,label,speaker,sex,text"]
    for i, (speaker, sex, label) in enumerate(rows):
        name = f"{speaker}/{speaker}_{label}_{i}.flac"
        os.makedirs(os.path.join(root, corpus, speaker), exist_ok=True)
        audio, rate = soundfile.read(clips[i])
        soundfile.write(os.path.join(root, corpus, name), audio, rate, subtype="PCM_16", format="FLAC")
        lines.append(f"{name},{label},{speaker},{sex},words {i}")
    with open(os.path.join(root, corpus, "files.csv"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def test_listed_corpora_load_with_prefixed_speakers_their_sex_and_turev_calm_as_neutral(monkeypatch, tmp_path):
    _listed_corpus(tmp_path, "nemo", [("EB0", "f", "anger"), ("EB0", "f", "surprise"), ("MK0", "m", "neutral")])
    _listed_corpus(tmp_path, "ased", [("01", "f", "fear"), ("02", "m", "sadness")])
    _listed_corpus(tmp_path, "turev", [("spk1", "", "calm"), ("spk2", "", "anger"), ("spk2", "", "happiness")])
    monkeypatch.setenv("RTSER_DATA", str(tmp_path))
    nemo, ased, turev = (load_corpora([name]) for name in ("nemo", "ased", "turev"))
    assert [(u.speaker, u.label, u.female) for u in nemo] == [("nemo-EB0", "anger", True), ("nemo-EB0", "surprise", True), ("nemo-MK0", "neutral", False)]
    assert [(u.speaker, u.corpus) for u in ased] == [("ased-01", "ased"), ("ased-02", "ased")]
    assert [(u.label, u.female) for u in turev] == [("neutral", None), ("anger", None), ("happiness", None)]
    assert all(os.path.isfile(u.path) for u in nemo + ased + turev)
    shared = load_corpora(["nemo", "ased", "turev"], ["anger", "happiness", "neutral", "sadness"])
    assert sorted({u.label for u in shared}) == ["anger", "happiness", "neutral", "sadness"] and len(shared) == 6
    folds = make_folds(shared, {"turev": 2, "nemo": 2}, validation_per_corpus=0)  # speakers of unrecorded sex fold too
    assert sorted(s for f in folds for s in f.test) == ["nemo-EB0", "nemo-MK0", "turev-spk1", "turev-spk2"]


def test_leaving_one_corpus_out_tests_each_corpus_whole_and_trains_on_the_others():
    utterances = load_corpora(["emodb", "ravdess"], SHARED)
    folds = corpus_folds(utterances, validation_per_corpus=1, seed=0)
    assert [f.name for f in folds] == ["without-emodb", "without-ravdess"]
    for fold, corpus in zip(folds, ("emodb", "ravdess")):
        assert fold.test == {u.speaker for u in utterances if u.corpus == corpus}
        assert fold.train | fold.validation == {u.speaker for u in utterances if u.corpus != corpus}
        assert len(fold.validation) == 1 and not fold.validation & fold.train


def five_corpora(root) -> str:
    """A data folder of the five corpora: EMO-DB, RAVDESS and the noise as CI has them, and nEMO,
    ASED and TurEV-DB as small fixture corpora of two speakers each, with their own labels."""
    data = root / "data"
    os.makedirs(data)
    for name in ("emodb", "ravdess", "noise"):
        os.symlink(os.path.join(data_root(), name), data / name)
    speakers = [("s1", "f"), ("s2", "m")]
    for corpus, labels in (("nemo", ["anger", "fear", "happiness", "neutral", "sadness"]), ("ased", ["anger", "fear", "happiness", "neutral", "sadness"]), ("turev", ["anger", "calm", "happiness", "sadness"])):
        _listed_corpus(data, corpus, [(speaker, sex, label) for speaker, sex in speakers for label in labels])
    return str(data)


def test_a_smoke_run_leaving_one_corpus_out_scores_each_file_alone_and_streamed_on_the_shared_classes(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, RTSER_DATA=five_corpora(tmp_path), RTSER_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "training", "train", "training/configs/five_corpora_loco.yaml", "--smoke", "--no-final", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["protocol"]) == ["without-ased"] and metrics["protocol"]["without-ased"]["test"] == ["ased-s1", "ased-s2"]
    for kind in ("float", "tflite", "onnx", "float alone", "tflite alone", "onnx alone"):
        parts = metrics[kind]
        assert parts["ased"]["n"] == 10 and parts["ased, 4 shared classes"]["n"] == 8
        assert set(parts["ased"]["recall"]) == set(SHARED) and 0 <= parts["ased"]["ua"] <= 1
        summary = metrics["held_out_corpora"][kind]
        assert summary["shared_classes_mean_ua"] == round(parts["ased, 4 shared classes"]["ua"], 4)
    assert "first 10 of each voice" not in metrics["tflite alone"] and "first 10 of each voice" in metrics["tflite"]
    assert "Leave one corpus out" in (out / "report.md").read_text()


def test_a_shipped_model_is_scored_on_a_corpus_it_never_heard_alone_and_streamed(tmp_path):
    import soundfile

    data = tmp_path / "data"
    os.makedirs(data / "nemo")
    lines = ["file,label,speaker,sex,text"]
    for u in [u for u in load_emodb() if u.label in SHARED and u.speaker in ("emodb-03", "emodb-08")][::2]:
        name = f"{u.speaker}/{os.path.basename(u.path)[:-4]}.flac"
        os.makedirs(data / "nemo" / u.speaker, exist_ok=True)
        audio, rate = soundfile.read(u.path)
        soundfile.write(data / "nemo" / name, audio, rate, subtype="PCM_16", format="FLAC")
        lines.append(f"{name},{u.label},{u.speaker},{'f' if u.female else 'm'},words")
    (data / "nemo" / "files.csv").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, RTSER_DATA=str(data), RTSER_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "training", "score", "rtser/models/default", "--corpus", "nemo", "--out", str(tmp_path / "scored")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "scored" / "held_out.json").read_text())
    n = len(lines) - 1
    for kind in ("tflite", "onnx", "tflite alone", "onnx alone"):
        assert metrics[kind]["nemo"]["n"] == n and metrics[kind]["all"]["n"] == n
        assert metrics[kind]["all"]["ua"] > 0.5  # EMO-DB voices, which the shipped model trained on
        assert metrics["held_out_corpora"][kind]["own_classes_mean_ua"] == round(metrics[kind]["nemo"]["ua"], 4)
    assert "first 10 of each voice" in metrics["tflite"] and "first 10 of each voice" not in metrics["tflite alone"]
    assert "tflite alone" in (tmp_path / "scored" / "held_out.md").read_text() and "mean UA" in done.stdout
    assert metrics["channels"] == "recorded"
    # the same files, each heard through a microphone, level and room of its own
    os.symlink(os.path.join(data_root(), "noise"), data / "noise")
    done = subprocess.run([*command[:-1], str(tmp_path / "changing"), "--channels", "all"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    changed = json.loads((tmp_path / "changing" / "held_out.json").read_text())
    assert changed["channels"] == "all" and changed["tflite"]["nemo"]["n"] == n
    assert "Channels: all (drawn anew for each utterance)" in (tmp_path / "changing" / "held_out.md").read_text()
    done = subprocess.run([*command[:-1], str(tmp_path / "per_voice"), "--channels", "microphone", "--channel-per-voice"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "per_voice" / "held_out.json").read_text())["channels"] == "microphone, one per voice"


def test_channels_drawn_anew_give_every_utterance_another_microphone_and_level():
    augmenter = Augmenter(CHANNELS["all"], os.path.join(data_root(), "noise"), 16000)
    voice = load_waves(load_emodb()[:1], 16000)[0]
    heard = [augmenter.wave(voice) for _ in range(4)]
    spectra = [np.abs(np.fft.rfft(h)) for h in heard]
    levels = [float(np.sqrt(np.mean(h**2))) for h in heard]
    assert all(len(h) == len(voice) for h in heard) and len({round(v, 4) for v in levels}) == 4
    # each hears another band: the share of energy above 3 kHz differs from utterance to utterance
    high = [float(np.sum(x[len(x) * 3 // 8 :] ** 2) / np.sum(x**2)) for x in spectra]
    assert max(high) > 1.5 * min(high)


def test_a_higher_voice_channel_raises_a_real_voices_pitch_and_formants_at_its_tempo():
    augmenter = Augmenter(CHANNELS["higher_voice"], os.path.join(data_root(), "noise"), 16000)
    voice = load_waves(load_emodb()[:1], 16000)[0]
    config = FeatureConfig(pitch=True)
    before = extract(voice, config)

    def semitones_up(heard):  # over the frames clearly voiced before and after (the tempo is kept)
        after = extract(heard, config)
        voiced = (before[:, -1] > 0.8) & (after[:, -1] > 0.8)
        return float(np.median(after[voiced, -2] - before[voiced, -2]))

    def centroid_hz(samples):  # where the spectrum's energy sits: up with the formants
        power = np.abs(np.fft.rfft(samples)) ** 2
        return float(np.sum(np.fft.rfftfreq(len(samples), 1 / 16000) * power) / np.sum(power))

    heard = [augmenter.wave(voice) for _ in range(3)]
    assert all(len(h) == len(voice) for h in heard)
    raised = [semitones_up(h) for h in heard]
    assert all(3.5 < r < 7.5 for r in raised) and max(raised) - min(raised) > 0.2, raised
    assert all(centroid_hz(h) > 1.15 * centroid_hz(voice) for h in heard)
    first, again = augmenter.heard([voice, voice], ["one voice", "one voice"])  # one channel per voice: one shift
    assert np.array_equal(first, again)


def test_a_listed_corpus_not_built_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RTSER_DATA", str(tmp_path))
    with pytest.raises(DataMissing, match="nemo not found: no files.csv .*add_corpora.py"):
        load_corpora(["nemo"])


def test_missing_data_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RTSER_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataMissing, match="set RTSER_DATA"):
        data_root()


@pytest.mark.parametrize("n_folds", [{"emodb": 10}, {"ravdess": 6}, {"emodb": 5, "ravdess": 6}])
def test_folds_never_share_a_speaker(n_folds):
    utterances = load_corpora(sorted(n_folds), SHARED)
    folds = make_folds(utterances, n_folds)
    tested = [s for f in folds for s in f.test]
    assert sorted(tested) == sorted({u.speaker for u in utterances})  # every speaker tested exactly once
    for fold in folds:
        assert not (fold.test & fold.validation) and not (fold.test & fold.train) and not (fold.validation & fold.train)
    if "ravdess" in n_folds:
        for fold in folds:
            actors = [int(s[-2:]) for s in fold.test if s.startswith("ravdess")]
            assert sum(a % 2 == 0 for a in actors) == sum(a % 2 == 1 for a in actors)
    final = final_split(utterances)
    assert final.validation and not (final.validation & final.train)


def test_a_corpus_left_out_of_the_folds_only_trains():
    utterances = load_corpora(["emodb", "ravdess"], SHARED)
    folds = make_folds(utterances, {"emodb": 10})
    ravdess = {u.speaker for u in utterances if u.corpus == "ravdess"}
    assert len(folds) == 10 and sorted(s for f in folds for s in f.test) == sorted({u.speaker for u in utterances} - ravdess)
    for fold in folds:
        assert len(fold.validation & ravdess) == 2 and fold.train | fold.validation >= ravdess


def test_stream_positions_number_each_voice_from_zero_in_a_seeded_order():
    speakers = ["a", "b", "a", "c", "a", "b"] * 5
    positions = stream_positions(speakers, seed=3)
    for speaker in set(speakers):
        mine = positions[np.array(speakers) == speaker]
        assert sorted(mine.tolist()) == list(range(len(mine)))
    assert positions.tolist() == stream_positions(speakers, seed=3).tolist() != stream_positions(speakers, seed=4).tolist()


def test_scores_count_missing_decisions_as_errors():
    truth = np.array([0, 0, 1, 1])
    result = scores(truth, np.array([0, NO_DECISION, 1, 0]), ["a", "b"])
    assert result["ua"] == pytest.approx(0.5) and result["wa"] == pytest.approx(0.5)
    assert result["no_decision"] == 1 and result["confusion"] == [[1, 0], [1, 1]]


@pytest.mark.parametrize(
    "section,error",
    [
        ("train: {epochz: 3}", "train.epochz: unknown key"),
        ("train: {epochs: ten}", "train.epochs: expected an integer, got str 'ten'"),
        ("features: {fmax: 99999}", "features: .*fmax"),
        ("normalization: {voice_temperature: 0}", "voice_temperature must be positive"),
        ("normalization: {first_hearing_share: 1.5}", "first_hearing_share must be between 0 and 1"),
        ("folds: {ravdess: 6}", "folds must name one or more of the corpora"),
        ("protocol: leave_one_corpus_out", "needs two or more corpora and no folds"),
        ("protocol: corpora", "unknown protocol"),
        ("train: {balanced_sampling: true}", "balances the classes already"),
        ("train: {device: tpu}", "train.device must be auto, cpu or cuda"),
        ("train: {channel_copies: 0}", "train.channel_copies must be 1 or more"),
        ("detector_network: nowhere/voice_network.npz", "detector_network nowhere/voice_network.npz not found"),
        ("detector_network: rtser/models/default/voice_network.npz\nfeatures: {n_mfcc: 0, n_mels: 64}", "reads other feature frames than the recipe's"),
        ("augment: {colour_prob: .nan}", "augment.colour_prob: expected a finite number"),
        ("augment: {rooms: cathedral}", "augment: rooms must be recorded or synthetic"),
    ],
)
def test_config_rejects_unknown_keys_and_bad_values(tmp_path, section, error):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: x\ncorpora: [emodb]\nlabels: [anger]\nfolds: {{emodb: 2}}\n{section}\n")
    with pytest.raises(ConfigError, match=error):
        load_config(str(path))


def test_recipe_features_are_what_the_overlays_make_them(tmp_path):
    # what `python -m training detector --features-of RECIPE --with OVERLAY` teaches a detector on: the
    # CNN-LSTM's 64 log-mel bands with the five-corpus recipe's pitch, where load_config refuses the pair
    recipe = os.path.join(ROOT, "training/configs/five_corpora_loco.yaml")
    overlay = os.path.join(ROOT, "training/configs/architectures/cnn_lstm_paper.yaml")
    with pytest.raises(ConfigError, match="reads other feature frames"):
        load_config(recipe, [overlay])
    features = recipe_features(recipe, [overlay])
    assert (features.n_mels, features.n_mfcc, features.pitch) == (64, 0, True)
    assert recipe_features(recipe) == load_config(recipe).features
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: {n_mels: many}\n")
    with pytest.raises(ConfigError, match="features"):
        recipe_features(recipe, [str(bad)])


def test_smoke_training_exports_models_that_rtser_runs(tmp_path, monkeypatch):
    out = tmp_path / "run"
    env = dict(os.environ, RTSER_DATA=five_corpora(tmp_path), RTSER_CACHE=str(tmp_path / "cache"))

    def train_smoke(*extra):
        # the default recipe with the statistics classifier, so that its parts can be scored apart below
        command = [sys.executable, "-m", "training", "train", "training/configs/default.yaml", "--with", "training/configs/experiments/statistics.yaml",
                   "--smoke", "--out", str(out)]  # fmt: skip
        return subprocess.run([*command, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

    done = train_smoke()
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for kind in ("float", "tflite", "onnx"):
        assert 0 <= metrics[kind]["all"]["ua"] <= 1 and metrics[kind]["all"]["n"] > 0
        by_position = [metrics[kind].get(part, {"n": 0})["n"] for part in ("first 10 of each voice", "the rest")]
        assert by_position[0] > 0 and sum(by_position) == metrics[kind]["all"]["n"]
    assert (out / "confusion-tflite.png").stat().st_size > 0 and (out / "report.md").exists()
    manifest = json.loads((out / "model" / "model.json").read_text())
    assert manifest["labels"] == SHARED and manifest["training"]["parameters"] > 0
    # the recipe's speech detector network made the windows and travels with the model
    detector = manifest["speech_detector"]
    with open(os.path.join(DEFAULT_MODEL, "model.json"), encoding="utf-8") as shipped:
        assert detector == json.load(shipped)["speech_detector"]  # the recipe's settings are the shipped ones
    assert sha256_of(str(out / "model" / detector["network"])) == detector["sha256"] == sha256_of(os.path.join(ROOT, "rtser/models/default/voice_network.npz"))
    speakers = manifest["training"]["speakers"]  # the default recipe has no validation speakers: every voice of the five corpora trains
    monkeypatch.setenv("RTSER_DATA", env["RTSER_DATA"])
    everyone = {u.speaker for u in load_corpora(load_config(os.path.join(CONFIGS, "default.yaml")).corpora, SHARED)}
    assert speakers["validation"] == [] and set(speakers["train"]) == everyone
    for kind in ("tflite", "onnx"):
        replay = run_rtser("replay", SAMPLE, "--model", str(out / "model"), "--backend", kind)
        assert replay.returncode == 0, replay.stderr
        assert any(json.loads(line)["type"] == "emotion" for line in replay.stdout.splitlines())

    # the parts of the fold's model scored apart: averaged, they are the model the run scored
    parts = subprocess.run([sys.executable, "scripts/member_scores.py", str(out), "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert parts.returncode == 0, parts.stderr[-3000:]
    ua = json.loads(parts.stdout[parts.stdout.index("{") :])["ua_float"]
    assert set(ua) == {"network part", "statistics classifier", "model"} and ua["model"] == round(metrics["float"]["all"]["ua"], 4)
    # a run averaged with itself (scripts/ensemble_scores.py) scores as the run scored itself
    ensemble = subprocess.run([sys.executable, "scripts/ensemble_scores.py", str(out), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert ensemble.returncode == 0, ensemble.stderr[-3000:]
    for kind in ("float", "tflite", "onnx"):
        assert f"{kind}: UA all {100 * metrics[kind]['all']['ua']:.1f};" in ensemble.stdout

    # the fold's results are kept: the same command resumes without training it again
    fold_json = out / "fold00" / "fold.json"
    stamp = fold_json.stat().st_mtime_ns
    again = train_smoke("--no-final", "--run-folds", "0")
    assert again.returncode == 0, again.stderr[-3000:]
    assert fold_json.stat().st_mtime_ns == stamp and "epoch 1:" not in again.stdout + again.stderr
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # a fold trained by a process that stopped before its export and evaluation is not trained again
    decisions = json.loads(fold_json.read_text())
    fold_json.unlink()
    shutil.rmtree(out / "fold00" / "model")
    log = (out / "fold00" / "log.jsonl").read_text()
    resumed = train_smoke("--no-final", "--run-folds", "0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained model loaded" in resumed.stdout and "epoch 1:" not in resumed.stdout + resumed.stderr
    assert (out / "fold00" / "log.jsonl").read_text() == log
    assert json.loads(fold_json.read_text()) == decisions and (out / "fold00" / "model" / "model.tflite").exists()
    # the report's reproduce command does not name the folds this process happened to run
    reproduce = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("Reproduce:"))
    assert "--smoke" in reproduce and "--run-folds" not in reproduce
    # ...but never mixes another recipe's folds in, and names only folds that exist
    other = train_smoke("--no-final", "--with", "training/configs/architectures/statistics_mlp.yaml")
    assert other.returncode == 2 and "another recipe" in other.stderr and "Traceback" not in other.stderr
    missing = train_smoke("--no-final", "--run-folds", "3")
    assert missing.returncode == 2 and "fold 3 does not exist" in missing.stderr


CONFIGS = os.path.join(ROOT, "training", "configs")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(CONFIGS) if n.endswith(".yaml")))
def test_every_shipped_recipe_loads(name):
    config = load_config(os.path.join(CONFIGS, name))
    assert set(config.corpora) == set(config.folds) or (config.protocol == "leave_one_corpus_out" and not config.folds)
    shared = [corpus for corpus in config.corpora if corpus in ("emodb", "ravdess")]  # the corpora CI has; the others are tested on fixtures
    utterances = load_corpora(shared, config.labels)
    assert {u.label for u in utterances} == set(config.labels)


@pytest.mark.parametrize("overlay", sorted(glob.glob(os.path.join(CONFIGS, "*", "*.yaml"))))
def test_every_overlay_applies_to_a_recipe(overlay):
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [overlay])  # trains every epoch, as averaging needs
    stem = os.path.splitext(os.path.basename(overlay))[0]
    assert config.name == f"emodb_loso_long-{stem}" and config.labels and config.folds == {"emodb": 10}
    if "/architectures/" in overlay:
        assert config.model["architecture"] in ARCHITECTURES


def test_the_held_out_corpus_table_script_trains_loadable_recipes_and_feeds_its_own_runs_to_the_ensemble_and_student():
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", "architectures_loco.sh")], env={**os.environ, "DRY": "1"},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    trained = {}
    for words in (line.split() for line in lines if " -m training train " in line):
        overlays = [os.path.join(ROOT, words[i + 1]) for i, word in enumerate(words) if word == "--with"]
        config = load_config(os.path.join(ROOT, words[words.index("train") + 1]), overlays)  # a renamed overlay fails here, not hours in
        assert config.protocol == "leave_one_corpus_out" and config.train.threads == 1
        trained.setdefault(words[words.index("--out") + 1], []).append(words[words.index("--out") + 2 :])
    assert len(trained) == 8 and all(sorted(runs) == [[], ["--run-folds", "0-2"], ["--run-folds", "3-4"]] for runs in trained.values())
    ensemble = next(line.split() for line in lines if "ensemble_scores.py" in line)
    student = load_config(os.path.join(CONFIGS, "five_corpora_loco.yaml"), [os.path.join(CONFIGS, "experiments", "distilled_loco.yaml")])
    assert set(ensemble[2:]) == set(student.train.teachers) < set(trained)
    assert lines.index(" ".join(ensemble)) < min(i for i, line in enumerate(lines) if "distilled_loco" in line)  # teachers first


def test_overlays_merge_sections_but_replace_the_model(tmp_path):
    overlay = tmp_path / "small.yaml"
    overlay.write_text("model: {architecture: timnet, filters: 8}\nfeatures: {n_mfcc: 39}\ntrain: {threads: 1}\n")
    config = load_config(os.path.join(CONFIGS, "emodb_loso.yaml"), [str(overlay)])
    assert config.model == {"architecture": "timnet", "filters": 8}  # no width left from Light-SERNet
    assert config.features.n_mfcc == 39 and config.features.n_mels == 40
    assert config.train.threads == 1 and config.train.epochs == 20  # the recipe's other settings stay
    overlay.write_text("name: other\n")
    with pytest.raises(ConfigError, match="small.yaml: an overlay cannot set name"):
        load_config(os.path.join(CONFIGS, "emodb_loso.yaml"), [str(overlay)])


def test_a_recipe_on_a_base_recipe_is_the_base_with_its_own_keys_on_top(tmp_path):
    default = load_config(os.path.join(CONFIGS, "default.yaml"))
    loco, two = (load_config(os.path.join(CONFIGS, name)) for name in ("five_corpora_loco.yaml", "emodb_ravdess.yaml"))
    assert (loco.protocol, loco.folds, loco.name) == ("leave_one_corpus_out", {}, "five_corpora_loco")  # folds are replaced whole
    assert (loco.model, loco.train, loco.features, loco.corpora) == (default.model, default.train, default.features, default.corpora)
    assert (two.corpora, two.folds, two.train.balanced_sampling, two.train.class_weights) == (["emodb", "ravdess"], {"emodb": 5, "ravdess": 6}, False, True)
    assert (two.model, two.train.epochs, two.speech_detector) == (default.model, default.train.epochs, default.speech_detector)
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="b.yaml: base a.yaml leads back to itself"):
        load_config(str(tmp_path / "a.yaml"))


def test_an_architecture_brings_its_own_schedule_and_the_recipe_keeps_the_rest():
    config = load_config(os.path.join(CONFIGS, "emodb_loso.yaml"), [os.path.join(CONFIGS, "architectures", "timnet.yaml")])
    assert (config.train.epochs, config.train.batch_size, config.train.average_last) == (100, 64, 10)
    assert config.train.label_smoothing == 0.1 and config.folds == {"emodb": 10}


def test_mixup_pairs_each_example_with_another_and_is_off_at_alpha_zero():
    rng = np.random.default_rng(0)
    share, partner = mixup(8, 0.0, rng)
    assert share == 1.0 and partner.tolist() == list(range(8))
    shares = []
    for _ in range(50):
        share, partner = mixup(8, 0.4, rng)
        assert sorted(partner.tolist()) == list(range(8))
        shares.append(share)
    assert 0 < min(shares) and max(shares) < 1 and np.std(shares) > 0.1  # Beta(0.4, 0.4) is U-shaped


def test_balanced_draws_give_each_class_and_each_corpus_within_it_equal_shares():
    # corpus a: 300 anger, 100 sadness; corpus b: 20 anger (no sadness)
    corpora = np.array(["a"] * 400 + ["b"] * 20)
    targets = np.array([0] * 300 + [1] * 100 + [0] * 20)
    weights = balanced_weights(corpora, targets)
    assert weights.sum() == pytest.approx(1)
    assert weights[targets == 1].sum() == pytest.approx(0.5)  # each class half
    assert weights[(corpora == "a") & (targets == 0)].sum() == pytest.approx(0.25)  # anger: half each corpus
    assert weights[corpora == "b"].sum() == pytest.approx(0.25)
    drawn = epoch_order(len(targets), weights, np.random.default_rng(0))
    assert len(drawn) == len(targets) and abs(np.mean(corpora[drawn] == "b") - 0.25) < 0.06
    assert sorted(epoch_order(len(targets), None, np.random.default_rng(0))) == list(range(len(targets)))


def fitted_on_the_first_fold(config, tmp_path) -> types.SimpleNamespace:
    """``Trainer.fit`` on the smoke data's first fold: the data, the fold's training and validation
    indices, the trainer, the model, spec and history it returned, and the records of its log."""
    data = prepare(config, smoke=True)
    fold = data.folds[0]
    train_idx, val_idx = (speaker_indices(data.utterances, s) for s in (fold.train, fold.validation))
    log = tmp_path / "log.jsonl"
    trainer = Trainer(config, data)
    model, spec, history = trainer.fit(train_idx, val_idx, str(log), 0)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return types.SimpleNamespace(data=data, train_idx=train_idx, val_idx=val_idx, trainer=trainer, model=model, spec=spec, history=history, records=records)


def test_weight_averaging_returns_the_averaged_model_with_recomputed_batch_norm_and_needs_every_epoch(tmp_path):
    overlay = tmp_path / "average.yaml"
    overlay.write_text("train: {epochs: 3, patience: 3, average_last: 2, threads: 1}\nsmoke: {epochs: 3}\n")
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [str(overlay)])
    run = fitted_on_the_first_fold(config, tmp_path)
    model, history, records = run.model, run.history, run.records
    assert [h["epoch"] for h in history] == [1, 2, 3] and records[-1]["averaged_epochs"] == 2
    assert not model.training
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) > 0 and not torch.allclose(m.running_var, torch.ones_like(m.running_var)) for m in norms)
    overlay.write_text("train: {epochs: 3, patience: 2, average_last: 2}\n")
    with pytest.raises(ConfigError, match="average.yaml: train.average_last needs every epoch trained"):
        load_config(os.path.join(CONFIGS, "emodb_loso.yaml"), [str(overlay)])


def fitted_whole(tmp_path, train: str, epochs: int) -> tuple:
    """The ``emodb_loso_long`` recipe with these ``train`` settings (YAML) and smoke epochs, and its
    first fold fitted without a stop (in ``tmp_path/whole``)."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"train: {train}\nsmoke: {{epochs: {epochs}}}\n")
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [str(overlay)])
    (tmp_path / "whole").mkdir()
    return config, fitted_on_the_first_fold(config, tmp_path / "whole")


def stopping_once(log, epochs_logged: int, validations: list):
    """A ``Trainer._validation`` that stops the training, as Ctrl-C or a killed machine would, the first
    time ``log`` holds ``epochs_logged`` epochs, and notes each call in ``validations``."""
    validated = Trainer._validation

    def validation(trainer, *args):
        if "stopped" not in validations and sum('"epoch"' in line for line in log.read_text().splitlines()) == epochs_logged:
            validations.append("stopped")
            raise KeyboardInterrupt
        validations.append("validated")
        return validated(trainer, *args)

    return validation


def test_a_network_stopped_between_epochs_resumes_at_the_next_and_ends_as_if_never_stopped(tmp_path, monkeypatch):
    config, whole = fitted_whole(tmp_path, "{epochs: 3, patience: 3, average_last: 2, threads: 1}", 3)
    log = tmp_path / "log.jsonl"
    monkeypatch.setattr(Trainer, "_validation", stopping_once(log, 2, []))  # in the third epoch
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, whole.data).fit(whole.train_idx, whole.val_idx, str(log), 0)
    assert (tmp_path / "log.network0.pt").exists()
    first_two = log.read_text().splitlines()
    model, _, history = Trainer(config, whole.data).fit(whole.train_idx, whole.val_idx, str(log), 0)  # a new process
    records = log.read_text().splitlines()
    assert records[:2] == first_two and [h["epoch"] for h in history] == [1, 2, 3] and len(records) == 4  # the two epochs not trained again
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), whole.model.state_dict().values()))
    assert not (tmp_path / "log.network0.pt").exists()


def test_a_fold_stopped_in_its_second_network_does_not_train_the_first_again(tmp_path, monkeypatch):
    config, whole = fitted_whole(tmp_path, "{epochs: 2, patience: 2, average_last: 2, threads: 1, networks: 2}", 2)
    log, validations = tmp_path / "log.jsonl", []
    monkeypatch.setattr(Trainer, "_validation", stopping_once(log, 3, validations))  # in the second network's second epoch
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, whole.data).fit(whole.train_idx, whole.val_idx, str(log), 0)
    assert (tmp_path / "log.network0.pt").exists() and (tmp_path / "log.network1.pt").exists()
    before = len(validations)
    model, _, history = Trainer(config, whole.data).fit(whole.train_idx, whole.val_idx, str(log), 0)  # a new process
    # left: the second network's second epoch, its averaged weights, the two networks averaged; nothing of the first
    assert len(validations) - before == 3 and [(h["network"], h["epoch"]) for h in history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    without_times = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in log.read_text().splitlines()]
    assert without_times == [{k: v for k, v in r.items() if k != "seconds"} for r in whole.records]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), whole.model.state_dict().values()))
    assert not list(tmp_path.glob("log.network*.pt"))


def test_several_networks_are_trained_from_different_seeds_and_the_model_is_the_mean_of_their_probabilities(tmp_path):
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [os.path.join(CONFIGS, "experiments", "networks2.yaml")])
    run = fitted_on_the_first_fold(config, tmp_path)
    model = run.model
    assert isinstance(model, Averaged) and len(model.members) == 2 and not model.training
    assert [h["network"] for h in run.history] == [0] * run.data.epochs + [1] * run.data.epochs and run.records[-1]["networks"] == 2
    first, second = model.members
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    config.train.networks = 1  # the first network is the one-network recipe's own, so a comparison isolates the added ones
    alone, _, _ = run.trainer.fit(run.train_idx, run.val_idx, str(tmp_path / "alone.jsonl"), 0)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), first.state_dict().values()))
    x = torch.from_numpy(np.concatenate(run.trainer.windows(run.val_idx, run.spec))[:, None])
    with torch.no_grad():
        assert torch.allclose(model(x), (first(x) + second(x)) / 2, atol=1e-6)


def test_without_validation_speakers_every_speaker_but_the_test_ones_trains_and_nothing_is_validated(tmp_path):
    overlay = tmp_path / "short.yaml"
    overlay.write_text("train: {epochs: 2, patience: 2, average_last: 2, threads: 1}\nsmoke: {epochs: 2}\n")
    overlays = [os.path.join(CONFIGS, "experiments", name) for name in ("statistics.yaml", "no_validation.yaml")]
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [*overlays, str(overlay)])  # a recipe with validation speakers
    run = fitted_on_the_first_fold(config, tmp_path)
    fold = run.data.folds[0]
    assert not fold.validation and not run.val_idx and fold.train == {u.speaker for u in run.data.utterances} - fold.test
    assert [r["val_ua"] for r in run.records] == [None] * 4 and run.records[-1]["statistics_classifier_windows"] > 0
    assert isinstance(run.model, Averaged) and not run.model.training
    overlay.write_text("train: {average_last: 0}\n")
    with pytest.raises(ConfigError, match="without validation speakers nothing chooses the epoch"):
        load_config(os.path.join(CONFIGS, "default.yaml"), [os.path.join(CONFIGS, "experiments", "no_validation.yaml"), str(overlay)])


def test_a_network_taught_by_a_teacher_run_learns_its_probabilities_and_the_teacher_must_not_have_heard_the_test_voices(tmp_path):
    overlay = tmp_path / "short.yaml"
    overlay.write_text("train: {epochs: 2, patience: 2, average_last: 2, threads: 1}\nsmoke: {epochs: 2}\n")
    no_validation = os.path.join(CONFIGS, "experiments", "no_validation.yaml")
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"), [no_validation, str(overlay)])
    teacher = fitted_on_the_first_fold(config, tmp_path)
    fold = teacher.data.folds[0]
    run = tmp_path / "teacher"
    (run / fold.name).mkdir(parents=True)
    torch.save({"model": teacher.model, "spec": teacher.spec}, run / fold.name / "trained.pt")
    _claim(config, teacher.data, str(run))
    config.train.teachers = [str(run)]
    test_speakers = [sorted(f.test) for f in teacher.data.folds]
    check_teachers(config, test_speakers)
    teachers = load_teachers(config, fold.name, torch.device("cpu"))
    trainer, targets = teacher.trainer, teacher.trainer.targets.copy()

    def student(weight: float, labels: np.ndarray):
        config.train.distillation_weight = weight
        trainer.targets = labels
        model, _, _ = trainer.fit(teacher.train_idx, [], str(tmp_path / "student.jsonl"), 0, teachers)
        return model.state_dict()

    wrong = targets.copy()
    wrong[teacher.train_idx] = np.random.default_rng(0).permutation(targets[teacher.train_idx])
    taught, taught_wrong = student(1.0, targets), student(1.0, wrong)  # the teacher alone teaches: the labels do not count
    assert all(torch.equal(a, b) for a, b in zip(taught.values(), taught_wrong.values()))
    labelled, untaught = student(0.0, targets), student(0.0, wrong)
    assert not all(torch.equal(a, b) for a, b in zip(labelled.values(), untaught.values()))
    assert not all(torch.equal(a, b) for a, b in zip(labelled.values(), taught.values()))
    trainer.targets = targets
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert float(distillation_loss(logits, torch.softmax(logits / 3, dim=-1), 3)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(logits, torch.tensor([[0.1, 0.8, 0.1]]), 3)) > 0.1
    with pytest.raises(ConfigError, match="other folds"):
        check_teachers(config, [test_speakers[0][1:], *test_speakers[1:]])  # a teacher cross-validated on other test voices
    with pytest.raises(ConfigError, match="no trained network for final"):
        load_teachers(config, "final", torch.device("cpu"))
    config.train.teachers = [str(tmp_path / "absent")]
    with pytest.raises(ConfigError, match="no cross_validation.json"):
        check_teachers(config, test_speakers)


@pytest.mark.parametrize("with_validation", [False, True])
def test_statistics_classifier_is_fitted_after_the_network_on_the_runtime_windows_of_the_chosen_speakers(tmp_path, with_validation):
    config = load_config(os.path.join(CONFIGS, "emodb_ravdess.yaml"), [os.path.join(CONFIGS, "experiments", "statistics.yaml")])
    config.validation_speakers_per_corpus = 2
    config.train.statistics_with_validation = with_validation
    config.train.statistics_l2 = [0.005, 0.05] if with_validation else 0.02  # a list: chosen on the fit speakers
    run = fitted_on_the_first_fold(config, tmp_path)
    model, records = run.model, run.records
    windows = run.trainer.windows(run.train_idx + run.val_idx if with_validation else run.train_idx, run.spec)
    assert isinstance(model, Averaged) and not model.training
    assert records[-2]["averaged_epochs"] == 1 and records[-1]["statistics_classifier_windows"] == sum(map(len, windows))
    assert records[-1]["statistics_l2"] in ([0.005, 0.05] if with_validation else [0.02])
    x = torch.from_numpy(np.concatenate([w for w in windows if len(w)])[:, None])
    assert torch.allclose(model.members[1].centre, time_statistics(x[:, 0]).mean(0), atol=1e-4)


def test_a_run_folder_from_before_a_new_setting_still_resumes_but_another_recipe_is_refused(tmp_path):
    config = load_config(os.path.join(CONFIGS, "emodb_loso_long.yaml"))
    data = types.SimpleNamespace(epochs=45, folds=make_folds(load_emodb(), {"emodb": 10}, 2, 0))
    _claim(config, data, str(tmp_path))
    claim = tmp_path / "cross_validation.json"
    stored = json.loads(claim.read_text())
    del stored["recipe"]["train"]["average_last"]  # written by code that did not have the setting yet
    stored["recipe"]["train"]["threads"] = 2
    claim.write_text(json.dumps(stored))
    _claim(config, data, str(tmp_path))
    config.name = "renamed"  # a name is a label: the same recipe under another name resumes
    _claim(config, data, str(tmp_path))
    del stored["recipe"]["normalization"]  # written before speaker normalisation: windows normalised otherwise
    claim.write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match="another recipe"):
        _claim(config, data, str(tmp_path))
    claim.unlink()
    _claim(config, data, str(tmp_path))
    config.train.average_last = 10
    with pytest.raises(ConfigError, match="another recipe"):
        _claim(config, data, str(tmp_path))


def test_a_run_folder_made_through_another_speech_detector_network_at_the_same_path_is_refused(tmp_path):
    config = load_config(os.path.join(ROOT, "training", "configs", "default.yaml"))
    data = types.SimpleNamespace(epochs=config.train.epochs, folds=make_folds(load_emodb(), {"emodb": 10}, 2, 0))
    _claim(config, data, str(tmp_path))
    claim = tmp_path / "cross_validation.json"
    stored = json.loads(claim.read_text())
    assert stored["recipe"]["speech_detector"]["sha256"] == sha256_of(os.path.join(ROOT, config.detector_network))
    stored["recipe"]["speech_detector"]["sha256"] = "0" * 64  # the file at that path was another network's then
    claim.write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match="another recipe"):
        _claim(config, data, str(tmp_path))


def test_the_feature_bank_hears_each_voice_through_one_channel_per_copy_and_is_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSER_CACHE", str(tmp_path))
    config = load_config(os.path.join(ROOT, "training", "configs", "default.yaml"))
    # gains of at most 0 dB: a clipped loud utterance has a true DC offset, which the features remove,
    # and the shift of c0 would no longer be the gain alone
    gain_only = dataclasses.replace(config.augment, gain_prob=1.0, gain_db=(-12.0, 0.0), speed_prob=0.0, noise_prob=0.0, reverb_prob=0.0)
    config = dataclasses.replace(config, augment=gain_only)
    utterances = [u for u in load_emodb() if u.speaker in ("emodb-03", "emodb-08")][::6]
    waves = load_waves(utterances, config.features.sample_rate)
    everything = range(len(waves))
    bank = FeatureBank(config, utterances, waves)
    clean, copies = bank.clean(everything), [bank.heard(k, everything) for k in range(2)]
    np.testing.assert_allclose(clean[0], extract(waves[0], config.features), atol=1e-4)
    # c0 is the level: a channel's gain shifts it alike in every frame of every utterance of the voice
    shifts = [[float(np.median(heard[i][:, 0] - clean[i][:, 0])) for i in everything] for heard in copies]
    for copy in shifts:
        for speaker in ("emodb-03", "emodb-08"):
            own = [shift for shift, u in zip(copy, utterances) if u.speaker == speaker]
            assert max(own) - min(own) < 0.01 * max(1.0, abs(np.mean(own))), own
    assert shifts[0] != shifts[1]  # each copy draws its channels again
    stored = sorted(os.listdir(tmp_path))
    again = FeatureBank(config, utterances, waves)  # another process of the same run reads the stored copies
    assert all(np.array_equal(a, b) for a, b in zip(again.heard(1, everything), copies[1])) and sorted(os.listdir(tmp_path)) == stored


def test_installing_over_a_model_needs_replace(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(os.path.join(ROOT, "rtser", "models", "default"), target)
    command = [sys.executable, "-m", "training", "train", "training/configs/default.yaml", "--smoke", "--install", str(target)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{target} holds a model already: add --replace to overwrite it" in done.stderr
    assert (target / "model.json").read_bytes() == open(os.path.join(ROOT, "rtser", "models", "default", "model.json"), "rb").read()
