"""A preallocated single-producer / single-consumer ring buffer for audio frames.

The producer (an audio callback) only copies into preallocated memory and advances a counter; it
never waits for the consumer. When the consumer falls behind by more than the capacity, the oldest
audio is overwritten; the consumer notices, skips it and counts it as dropped.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Lock-free SPSC buffer of ``capacity`` frames of ``channels`` float32 samples."""

    def __init__(self, capacity: int, channels: int = 1):
        if capacity <= 0 or channels <= 0:
            raise ValueError("capacity and channels must be positive")
        self.capacity = capacity
        self.channels = channels
        self._data = np.zeros((capacity, channels), dtype=np.float32)
        self._written = 0  # advanced by the producer only
        self._read = 0  # advanced by the consumer only
        self.dropped = 0  # frames the consumer lost to overflow, in total

    def write(self, block: np.ndarray) -> None:
        """Producer side: copy ``[n, channels]`` (or ``[n]`` for mono) frames in; never blocks."""
        block = block.reshape(len(block), self.channels)
        n = len(block)
        if n > self.capacity:
            block = block[n - self.capacity :]
        start = (self._written + n - len(block)) % self.capacity
        first = min(len(block), self.capacity - start)
        self._data[start : start + first] = block[:first]
        self._data[: len(block) - first] = block[first:]
        self._written += n

    def available(self) -> int:
        """Frames written and not yet read (may exceed capacity after an overflow)."""
        return self._written - self._read

    def read(self) -> np.ndarray:
        """Consumer side: everything still in the buffer, oldest first, as ``[n, channels]``."""
        written = self._written
        start = max(self._read, written - self.capacity)
        lost = start - self._read
        out = self._copy(start, written)
        overwritten = self._written - self.capacity - start  # producer lapped us while copying
        if overwritten > 0:
            out = out[overwritten:]
            lost += overwritten
        self.dropped += lost
        self._read = written
        return out

    def _copy(self, start: int, stop: int) -> np.ndarray:
        begin = start % self.capacity
        n = stop - start
        first = min(n, self.capacity - begin)
        return np.concatenate([self._data[begin : begin + first], self._data[: n - first]])
