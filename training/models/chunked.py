"""A network run on each hop of a window on its own, its embeddings pooled over the window (#33)."""

from __future__ import annotations

import torch

from .base import Classifier, PooledClassifier


class Chunked(Classifier):
    """``encoder`` run on chunks of ``chunk_frames`` frames, taken back from the window's last
    frame (the first chunk starts at the window's first frame, so it overlaps the second when the
    window is not a whole number of chunks); the chunks' embeddings are averaged and classified by
    the encoder's own head. No convolution crosses a chunk's edge, so a stream whose windows
    advance by one chunk could encode each chunk once and keep its embedding for the windows that
    hold it."""

    def __init__(self, encoder: PooledClassifier, chunk_frames: int):
        super().__init__()
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1, not {chunk_frames!r}")
        self.encoder, self.chunk_frames = encoder, int(chunk_frames)

    def chunk_starts(self, n_frames: int) -> list[int]:
        """Where each chunk of an ``n_frames`` window starts, oldest first."""
        if n_frames < self.chunk_frames:
            raise ValueError(f"a window of {n_frames} frames is shorter than one chunk of {self.chunk_frames}")
        count = -(-n_frames // self.chunk_frames)
        return [max(0, n_frames - (count - k) * self.chunk_frames) for k in range(count)]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        starts = self.chunk_starts(x.shape[2])
        chunks = torch.cat([x[:, :, s : s + self.chunk_frames] for s in starts])  # [chunks * batch, 1, chunk, features]
        embeddings = self.encoder.embed(chunks).reshape(len(starts), x.shape[0], -1)
        return self.encoder.classify(embeddings.mean(dim=0))
