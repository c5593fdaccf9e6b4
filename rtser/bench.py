"""``rtser bench``: speed and memory of the pipeline, with a recompute-every-window baseline."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import numpy as np

from .errors import RtserError
from .audio import StreamResampler, read_blocks, to_float_mono
from .blas import one_blas_thread
from .features import FeaturePlan, StreamingExtractor, extract
from .pipeline import BATCH_SECONDS, Recognizer
from .speech import voice_detector
from .windows import prepare_window

# 22.9 s: six utterances of six voices and emotions with pauses between them, as a device hears speech
SAMPLE = os.path.join(os.path.dirname(__file__), "samples", "emodb-six-emotions.flac")
CHUNK_SECONDS = 0.1
# each CPU figure is the median of this many passes over the audio: one pass moves with what else runs
PASSES = 3


def _load(path: str, rate: int) -> np.ndarray:
    file_rate, blocks = read_blocks(path)
    samples = np.concatenate([to_float_mono(b)[0] for b in blocks])
    resampler = StreamResampler(file_rate, rate)
    return np.concatenate([resampler.process(samples), resampler.process(np.zeros(0, np.float32), last=True)])


def _cpu(fn) -> float:
    """Median CPU seconds of ``PASSES`` calls of ``fn``."""
    seconds = []
    for _ in range(PASSES):
        start = time.process_time()
        fn()
        seconds.append(time.process_time() - start)
    return float(np.median(seconds))


def _run_pipeline(recognizer: Recognizer, audio: np.ndarray, chunk: int) -> int:
    """Push the audio through the recognizer; how many windows its network judged (one emotion
    event each)."""
    recognizer.reset()
    events = []
    for i in range(0, len(audio), chunk):
        events += recognizer.push(audio[i : i + chunk])
    events += recognizer.flush()
    return sum(event["type"] == "emotion" for event in events)


def _pipeline_cpu(recognizer: Recognizer, audio: np.ndarray, chunk: int) -> tuple[float, dict]:
    """CPU seconds of the pipeline on the audio (the median of ``PASSES`` passes) and, in that
    pass, the CPU seconds of each stage the recognizer counts, the audio's way in (conversion,
    resampling, batching) being what is left."""
    passes = []
    for _ in range(PASSES):
        before, start = dict(recognizer.stage_cpu_seconds), time.process_time()
        _run_pipeline(recognizer, audio, chunk)
        total = time.process_time() - start
        stages = {name: recognizer.stage_cpu_seconds[name] - before[name] for name in before}
        passes.append((total, {**stages, "audio_in": total - sum(stages.values())}))
    return sorted(passes, key=lambda p: p[0])[len(passes) // 2]


def detector_ms_per_second(manifest, audio: np.ndarray, chunk: int) -> float:
    """CPU milliseconds of the speech detector alone (pre-filter included) per second of audio,
    given the feature frames of each chunk (computed beforehand, as the pipeline shares them)."""
    detector = voice_detector(manifest.speech_detector, manifest.features, manifest.folder)
    extractor = StreamingExtractor(manifest.features)
    with one_blas_thread():  # as the pipeline runs it
        chunks = [(audio[i : i + chunk], extractor.push(audio[i : i + chunk])) for i in range(0, len(audio), chunk)]
        cpu = _cpu(lambda: [detector.push(samples, frames) for samples, frames in chunks])
    return round(1000 * cpu / (len(audio) / manifest.features.sample_rate), 3)


def _run_streaming_features(config, audio: np.ndarray, chunk: int) -> None:
    extractor = StreamingExtractor(config)
    with one_blas_thread():  # as the pipeline runs it
        for i in range(0, len(audio), chunk):
            extractor.push(audio[i : i + chunk])


def _window_starts(recognizer: Recognizer, n_samples: int) -> tuple[list[int], int]:
    m = recognizer.manifest
    window, hop = round(m.window.seconds * m.features.sample_rate), round(m.window.hop_seconds * m.features.sample_rate)
    return [max(0, end - window) for end in range(hop, n_samples + 1, hop)], window


def _run_recompute_baseline(recognizer: Recognizer, audio: np.ndarray, features_only: bool) -> None:
    """What a naive implementation does: features of the whole window again at every hop."""
    m = recognizer.manifest
    plan, voice = FeaturePlan(m.features), m.voice_statistics()
    starts, window = _window_starts(recognizer, len(audio))
    for start in starts:
        features = extract(audio[start : start + window], m.features, plan)
        if not features_only:
            prepared = prepare_window(features, m.features, m.gate, voice, m.input_shape[2])
            if prepared is not None:
                recognizer.backend.predict(prepared)


def _latencies(recognizer: Recognizer, audio: np.ndarray, count: int = 200) -> np.ndarray:
    """CPU milliseconds of each of ``count`` network runs on the audio's windows."""
    m = recognizer.manifest
    features = extract(audio, m.features)
    n, hop, voice = m.input_shape[2], m.window.hop_frames(m.features), m.voice_statistics()
    windows = [prepare_window(features[s : s + n], m.features, m.gate, voice, n) for s in range(0, len(features) - n + 1, hop)]
    windows = [w for w in windows if w is not None] or [np.zeros(m.input_shape[2:], np.float32)]
    for window in windows[:5]:
        recognizer.backend.predict(window)
    out = []
    for i in range(count):
        started = time.process_time()
        recognizer.backend.predict(windows[i % len(windows)])
        out.append(time.process_time() - started)
    return np.array(out) * 1000


def _model_figures(recognizer: Recognizer, audio: np.ndarray) -> dict:
    """A model's CPU time per window (median, p95) and its network file's size."""
    latency = _latencies(recognizer, audio)
    network = recognizer.manifest.networks[recognizer.backend.kind]["path"]
    return {"folder": recognizer.manifest.folder, "backend": recognizer.backend.name,
            "cpu_ms_per_window": {"median": round(float(np.median(latency)), 3), "p95": round(float(np.percentile(latency, 95)), 3)},
            "file_kb": round(os.path.getsize(os.path.join(recognizer.manifest.folder, network)) / 1024, 1)}  # fmt: skip


def _versions() -> dict:
    """Versions of the packages that do the work."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("rtser", "numpy", "ai-edge-litert", "onnxruntime", "pymicro-vad", "soxr"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


# The child reports the peak RSS of its own address space (VmHWM): getrusage would also count the
# parent's pages the child held between fork and exec.
_REPLAY_REPORTING_RSS = (
    "import sys; from rtser.cli import main; code = main(sys.argv[1:]); "
    "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr); "
    "sys.exit(code)"
)


def _replay_process(model: str | None, backend: str, audio: np.ndarray, rate: int) -> dict:
    """Wall time and peak RSS of a fresh ``rtser replay`` process on a 3 s file."""
    import tempfile

    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip3s.wav")
        soundfile.write(path, audio[: 3 * rate], rate, subtype="PCM_16")
        command = [sys.executable, "-c", _REPLAY_REPORTING_RSS, "replay", path, "--backend", backend]
        command += ["--model", model] if model else []
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip()}
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return {"seconds": round(wall, 3), "peak_rss_mb": round(peak_kb / 1024, 1)}


def run_bench(model: str | None, backend: str, seconds: float, audio_path: str | None, compare: str | None = None,
              batch_seconds: float | None = None) -> dict:  # fmt: skip
    """All figures, as a dict ready for JSON (``compare``: another model whose network is timed on
    the same windows in the same run; ``batch_seconds``: the recognizer's, None for its default)."""
    if not 1 <= seconds <= 36000:
        raise RtserError(f"--seconds must be between 1 and 36000, got {seconds:g}")
    recognizer = Recognizer(model, backend=backend, threads=1, batch_seconds=BATCH_SECONDS if batch_seconds is None else batch_seconds)
    rate = recognizer.manifest.features.sample_rate
    clip = _load(audio_path or SAMPLE, rate)
    repeats = int(np.ceil(seconds * rate / len(clip)))
    audio = np.tile(clip, repeats)[: int(seconds * rate)]
    duration = len(audio) / rate
    chunk = int(CHUNK_SECONDS * rate)
    batch = -(-round(recognizer.batch_seconds * rate) // chunk) * chunk  # what the pipeline gathers: whole pushes up to a batch
    config = recognizer.manifest.features
    windows = _run_pipeline(recognizer, audio, chunk)  # (and a warm-up)
    pipeline_cpu, pipeline_stages = _pipeline_cpu(recognizer, audio, chunk)
    baseline_cpu = _cpu(lambda: _run_recompute_baseline(recognizer, audio, features_only=False))
    features_cpu = _cpu(lambda: _run_streaming_features(config, audio, batch))
    spectral_cpu = _cpu(lambda: _run_streaming_features(dataclasses.replace(config, pitch=False), audio, batch)) if config.pitch else features_cpu
    baseline_features_cpu = _cpu(lambda: _run_recompute_baseline(recognizer, audio, features_only=True))
    figures = {
        "measured": {"audio": os.path.abspath(audio_path or SAMPLE) + (" (repeated)" if repeats > 1 else ""), "audio_seconds": round(duration, 1),
                     "push_seconds": CHUNK_SECONDS, "batch_seconds": recognizer.batch_seconds, "window_seconds": recognizer.manifest.window.seconds,
                     "hop_seconds": recognizer.manifest.window.hop_seconds,
                     "windows_judged_per_audio_second": round(windows / duration, 3), "threads": 1,
                     "times": f"CPU time of this process, median of {PASSES} passes", "cpu": cpu_name(), "versions": _versions()},  # fmt: skip
        "model": _model_figures(recognizer, audio),
        "pipeline_x_realtime": round(duration / pipeline_cpu, 1),
        "pipeline_cpu_ms_per_audio_second": round(1000 * pipeline_cpu / duration, 3),
        "baseline_recompute_x_realtime": round(duration / baseline_cpu, 1),
        "pipeline_speedup_vs_baseline": round(baseline_cpu / pipeline_cpu, 2),
        "feature_ms_per_audio_second": round(1000 * features_cpu / duration, 3),
        "baseline_feature_ms_per_audio_second": round(1000 * baseline_features_cpu / duration, 3),
        "feature_speedup_vs_baseline": round(baseline_features_cpu / features_cpu, 2),
        "speech_detector_ms_per_audio_second": detector_ms_per_second(recognizer.manifest, audio, batch),
        "speech_detector_ms_per_audio_second_on_silence": detector_ms_per_second(recognizer.manifest, np.zeros_like(audio), batch),
        "replay_3s_file": _replay_process(model, backend, audio, rate),
    }
    figures["stages_ms_per_audio_second"] = {name: round(1000 * cpu / duration, 3) for name, cpu in pipeline_stages.items()}
    alone = {"features": 1000 * spectral_cpu / duration, "pitch": 1000 * (features_cpu - spectral_cpu) / duration,
             "speech_detector": figures["speech_detector_ms_per_audio_second"],
             "model": figures["model"]["cpu_ms_per_window"]["median"] * windows / duration}  # fmt: skip
    figures["stages_alone_ms_per_audio_second"] = {name: round(ms, 3) for name, ms in alone.items()}
    if compare:
        other = _model_figures(Recognizer(compare, backend=backend, threads=1), audio)
        other["times_slower_per_window"] = round(other["cpu_ms_per_window"]["median"] / figures["model"]["cpu_ms_per_window"]["median"], 2)
        figures["compared_model"] = other
    return figures


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
