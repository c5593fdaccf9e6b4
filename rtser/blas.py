"""BLAS held to one thread for rtser's small matrix products."""

from __future__ import annotations

import contextlib
import functools


@functools.cache
def _threaded_blas():
    """A threadpoolctl controller of the loaded BLAS libraries when one of them runs several
    threads, else None (decided once: the command line sets one thread before numpy loads)."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController().select(user_api="blas")
    return controller if any(info["num_threads"] > 1 for info in controller.info()) else None


def one_blas_thread() -> contextlib.AbstractContextManager:
    """A context in which BLAS runs on one thread. rtser's products are a few frames by a few
    hundred values: a BLAS that threads them (in a program that loaded numpy before rtser) spends
    several times the CPU for nothing."""
    controller = _threaded_blas()
    return controller.limit(limits=1) if controller else contextlib.nullcontext()
