"""Audio in: reading files block by block, sample-format conversion and streaming resampling."""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np

from .errors import RtserError, warn
from .native import native_stderr_silenced

_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int8): 128.0}
MIN_RATE, MAX_RATE = 4000, 768000  # sample rates rtser takes, in Hz (files, pushes, devices)
MAX_CHANNELS = 64


def check_rate(rate) -> int:
    """``rate`` as an int, or RtserError when it is not a sample rate rtser takes."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float, np.floating)) or not MIN_RATE <= rate <= MAX_RATE or rate != int(rate):
        raise RtserError(f"sample rate must be a whole number of Hz between {MIN_RATE} and {MAX_RATE}, got {rate!r}"[:160])
    return int(rate)


def audio_array(samples) -> np.ndarray:
    """``samples`` as an array of shape ``[n]`` or ``[n, channels]``; RtserError for other shapes
    (``[channels, n]`` among them)."""
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise RtserError(f"audio must be [samples] or [samples, channels], got shape {samples.shape}")
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        raise RtserError(f"audio of shape {samples.shape} has more than {MAX_CHANNELS} channels: pass [samples, channels], not [channels, samples]")
    return samples


def to_float_mono(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """Any numeric samples (``[n]`` or ``[n, channels]``; int8/16/32, uint8 or float) to float32
    mono in [-1, 1]. Returns the samples and how many were not finite (they become 0)."""
    samples = audio_array(samples)
    if samples.dtype == np.uint8:
        samples = (samples.astype(np.float32) - 128.0) / 128.0
    elif samples.dtype in _INT_SCALE:
        samples = samples.astype(np.float32) / _INT_SCALE[samples.dtype]
    elif np.issubdtype(samples.dtype, np.floating):
        samples = samples.astype(np.float32, copy=False)
    else:
        raise RtserError(f"unsupported sample type {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if samples.size and np.abs(samples).max() <= 1.0:  # finite and in range, the usual case: nothing to mend
        return samples.copy(), 0  # never the caller's buffer, which it may fill again
    finite = np.isfinite(samples)
    bad = int(len(samples) - np.count_nonzero(finite))
    if bad:
        samples = np.where(finite, samples, 0.0).astype(np.float32)
    return np.clip(samples, -1.0, 1.0), bad


def scale_problem(samples: np.ndarray) -> str | None:
    """What looks wrong with the scale of raw samples (float beyond [-1, 1], 16-bit audio handed
    over as int32), or None."""
    if samples.size == 0:
        return None
    if np.issubdtype(samples.dtype, np.floating):
        peak = float(np.abs(samples).max())
        if not math.isfinite(peak):
            peak = float(np.nanmax(np.abs(samples), initial=0.0, where=np.isfinite(samples)))
        if peak > 2.0:
            return f"float samples reach {peak:.4g}: rtser reads float audio in [-1, 1] and clips the rest (scale it, or pass 16-bit audio as int16)"
    elif samples.dtype == np.int32:
        peak = int(np.abs(samples.astype(np.int64)).max())
        if 256 < peak < 32768:
            return "int32 samples stay within the 16-bit range: pass 16-bit audio as int16 (as int32 it is read 65536 times too quiet)"
    return None


def band_problem(rate: int, fmax: float) -> str | None:
    """What audio at ``rate`` lacks of the band the model's features read (up to ``fmax`` Hz), or
    None: telephone audio at 8 kHz holds nothing above 4 kHz, and resampling cannot bring it back."""
    if rate >= 2 * fmax:
        return None
    return (f"audio at {rate} Hz holds nothing above {rate / 2:g} Hz but the model reads up to {fmax:g} Hz: "
            f"expect missed speech and lower accuracy (record at {2 * fmax:g} Hz or more)")  # fmt: skip


class StreamResampler:
    """Converts a stream from one rate to another chunk by chunk (soxr), or passes it through."""

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate, self.out_rate = check_rate(in_rate), int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next chunk; ``last=True`` drains what the filter still holds."""
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def read_blocks(path: str, block_seconds: float = 0.5) -> tuple[int, Iterator[np.ndarray]]:
    """Open an audio file (WAV, FLAC, OGG, ... as libsndfile reads them) and return its rate and an
    iterator of ``[n, channels]`` float32 blocks. Raises RtserError with one clear line when the file
    is missing, empty or cannot be decoded."""
    import soundfile

    if not os.path.exists(path):
        raise RtserError(f"no such file: {path}")
    if os.path.isdir(path):
        raise RtserError(f"is a directory, not an audio file: {path}")
    if not os.path.isfile(path):  # a FIFO, a device: reading it could wait for ever
        raise RtserError(f"not a regular file: {path}")
    try:
        with native_stderr_silenced():
            handle = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise RtserError(f"cannot decode audio file {path}: {_reason(err)}") from None
    if not MIN_RATE <= handle.samplerate <= MAX_RATE or not 0 < handle.channels <= MAX_CHANNELS:
        handle.close()
        raise RtserError(f"invalid audio header in {path}: {handle.samplerate} Hz, {handle.channels} channels "
                         f"(rtser reads {MIN_RATE} to {MAX_RATE} Hz, 1 to {MAX_CHANNELS} channels)")  # fmt: skip
    block = max(1, int(block_seconds * handle.samplerate))

    def blocks() -> Iterator[np.ndarray]:
        announced, read = handle.frames, 0
        with handle:
            try:
                # Read until the decoder stops, not until the header's frame count: a truncated or
                # still-growing file yields what it holds.
                while True:
                    with native_stderr_silenced():
                        data = handle.read(block, dtype="float32", always_2d=True)
                    if len(data) == 0:
                        break
                    read += len(data)
                    yield data
            except (soundfile.LibsndfileError, RuntimeError) as err:
                raise RtserError(f"cannot decode audio file {path}: {_reason(err)}") from None
        if 0 < read < announced:
            rate = handle.samplerate
            warn(f"{path} ended after {read / rate:.2f} s of the {announced / rate:.2f} s its header announces (cut short?)")

    return handle.samplerate, blocks()


def _reason(err: Exception) -> str:
    text = (str(err).strip() or type(err).__name__).splitlines()[0]
    if "not a regular file" in text:  # libsndfile's words for content it cannot recognise
        return "not a recognised audio format"
    return text
