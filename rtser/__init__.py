"""rtser: real-time speech emotion recognition for small devices.

>>> from rtser import Recognizer
>>> recognizer = Recognizer()            # the shipped default model
>>> events = recognizer.push(samples, 16000) + recognizer.flush()
"""

__all__ = ["AudioWarning", "Recognizer", "RtserError", "load_model"]
__version__ = "0.1.0"


def __getattr__(name):
    # Imported on first use, so that `rtser` on the command line can set up threads before numpy loads.
    if name == "RtserError":
        from .errors import RtserError

        return RtserError
    if name in ("AudioWarning", "Recognizer", "load_model"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rtser' has no attribute {name!r}")
