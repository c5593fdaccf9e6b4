"""Inference backends: int8 TFLite through LiteRT (or tflite-runtime) and ONNX through onnxruntime.

Each backend takes one prepared window ``[frames, n_features]`` (float32) and returns the class
probabilities. Input and output quantization is read from the network itself.
"""

from __future__ import annotations


import numpy as np

from .errors import RtserError
from .manifest import Manifest, verify_network
from .native import native_stderr_silenced

BACKEND_CHOICES = ("auto", "tflite", "onnx")


class Backend:
    """A loaded network, checked against its manifest."""

    name = ""
    kind = ""

    def predict(self, window: np.ndarray) -> np.ndarray:
        """Probabilities for one window ``[frames, n_features]``."""
        raise NotImplementedError

    def _check_shapes(self, manifest: Manifest, input_shape, output_size: int, path: str) -> None:
        if tuple(int(d) for d in input_shape) != manifest.input_shape:
            raise RtserError(
                f"model {path} takes input {list(input_shape)} but its manifest's features and window "
                f"give {list(manifest.input_shape)}"
            )
        if output_size != len(manifest.labels):
            raise RtserError(f"model {path} has {output_size} outputs but its manifest lists {len(manifest.labels)} labels")


def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    return Interpreter


class TFLiteBackend(Backend):
    """Runs a ``.tflite`` network with one interpreter call per window."""

    kind = "tflite"

    def __init__(self, manifest: Manifest, threads: int = 1):
        interpreter_class = _tflite_interpreter_class()
        if interpreter_class is None:
            raise RtserError("no TFLite runtime installed (pip install ai-edge-litert)")
        self.name = f"tflite ({interpreter_class.__module__.split('.')[0]})"
        path = verify_network(manifest, "tflite")
        try:
            with native_stderr_silenced():
                self._interpreter = interpreter_class(model_path=path, num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise RtserError(f"cannot load TFLite model {path}: {str(err).strip().splitlines()[0]}") from None
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RtserError(f"model {path} must have one input and one output")
        self._input, self._output = inputs[0], outputs[0]
        self._check_shapes(manifest, self._input["shape"], int(np.prod(self._output["shape"])), path)
        declared = manifest.networks["tflite"].get("input", {}).get("dtype")
        actual = np.dtype(self._input["dtype"]).name
        if declared is not None and declared != actual:
            raise RtserError(f"model {path} takes {actual} input but its manifest says {declared}")

    def predict(self, window: np.ndarray) -> np.ndarray:
        """Quantize the window as the network asks, invoke, dequantize the output."""
        x = window[None, None].astype(np.float32)
        dtype = self._input["dtype"]
        if dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        y = self._interpreter.get_tensor(self._output["index"]).reshape(-1)
        if self._output["dtype"] != np.float32:
            scale, zero = self._output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


class OnnxBackend(Backend):
    """Runs an ``.onnx`` network (int8 QDQ or float) with onnxruntime on one thread by default."""

    kind = "onnx"
    name = "onnx (onnxruntime)"

    def __init__(self, manifest: Manifest, threads: int = 1):
        try:
            import onnxruntime
        except ImportError:
            raise RtserError("onnxruntime is not installed (pip install onnxruntime)") from None
        path = verify_network(manifest, "onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for broken files
            raise RtserError(f"cannot load ONNX model {path}: {str(err).strip().splitlines()[0]}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RtserError(f"model {path} must have one input and one output")
        shape = outputs[0].shape
        if any(not isinstance(d, int) for d in shape[1:]) or any(not isinstance(d, int) for d in inputs[0].shape):
            raise RtserError(f"model {path} must have fixed input and output shapes")
        self._input_name = inputs[0].name
        self._check_shapes(manifest, inputs[0].shape, int(np.prod(shape)), path)

    def predict(self, window: np.ndarray) -> np.ndarray:
        """One session run for one window."""
        x = window[None, None].astype(np.float32)
        return self._session.run(None, {self._input_name: x})[0].reshape(-1).astype(np.float32)


_BACKENDS = {"tflite": TFLiteBackend, "onnx": OnnxBackend}
MAX_THREADS = 64  # far beyond any board; the runtimes crash on absurd counts (100000 segfaulted LiteRT)


def check_threads(threads: int) -> None:
    """Raise RtserError unless ``threads`` is a sane thread count for a runtime."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise RtserError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")


def load_backend(manifest: Manifest, preference: str = "auto", threads: int = 1) -> Backend:
    """The backend for ``preference`` ('tflite', 'onnx', or 'auto': TFLite when the model and a
    runtime are there, else ONNX)."""
    if preference not in BACKEND_CHOICES:
        raise RtserError(f"unknown backend {preference!r} (choose from {', '.join(BACKEND_CHOICES)})")
    check_threads(threads)
    if preference != "auto":
        if preference not in manifest.networks:
            raise RtserError(f"model {manifest.folder} has no {preference} network")
        return _BACKENDS[preference](manifest, threads)
    candidates = [kind for kind in ("tflite", "onnx") if kind in manifest.networks]
    if "tflite" in candidates and "onnx" in candidates and _tflite_interpreter_class() is None:
        candidates.remove("tflite")
    return _BACKENDS[candidates[0]](manifest, threads)
