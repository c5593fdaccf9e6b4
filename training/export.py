"""Export a trained network to int8 ONNX (QDQ, per-channel) and int8 TFLite (PT2E), with its manifest."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import tempfile
import warnings

import numpy as np
import torch

from rtser.manifest import FORMAT, MANIFEST_NAME, Manifest, sha256_of
from rtser.native import native_stderr_silenced

from .models import deployable
from .models.base import FloatStem, KeptInFloat


@contextlib.contextmanager
def _quiet():
    """Silence the converters' progress chatter and warnings (their native code's too)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def _kept_in_float(model: torch.nn.Module) -> set[str]:
    """The qualified class names of the model's modules that the int8 exports leave in float (the
    form in which both exporters record the module each operation comes from)."""
    return {f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules() if isinstance(m, KeptInFloat)}


def _float_note(model: torch.nn.Module) -> str:
    """What the manifest says of the stem's precision."""
    return "; first stage on the one-channel input in float" if any(isinstance(m, FloatStem) for m in model.modules()) else ""


def _onnx_nodes_of(path: str, classes: set[str]) -> list[str]:
    """The names of the ONNX graph's nodes that come from modules of these classes."""
    import onnx

    return [node.name for node in onnx.load(path).graph.node
            if any(p.key == "pkg.torch.onnx.class_hierarchy" and any(f"'{c}'" in p.value for c in classes) for p in node.metadata_props)]  # fmt: skip


def export_onnx_int8(model: torch.nn.Module, calibration: np.ndarray, path: str) -> dict:
    """int8 ONNX of a :func:`deployable` model with onnxruntime static QDQ quantization, per-channel
    int8 weights and uint8 activations, calibrated on real windows ``[n, frames, features]``.
    Unsigned activations are what onnxruntime's integer convolutions take on x86: it converts int8
    ones only where a tensor has one consumer and ran the rest (TIM-Net's gated blocks) in float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(calibration[:, None, None].astype(np.float32))

        def get_next(self):
            item = next(self._items, None)
            return None if item is None else {"window": item}

    example = torch.from_numpy(calibration[:1, None].astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        float_path, prepared = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "prepared.onnx")
        torch.onnx.export(
            model.eval(), (example,), float_path, dynamo=True, external_data=False,
            input_names=["window"], output_names=["probs"],
        )  # fmt: skip
        quant_pre_process(float_path, prepared)
        quantize_static(
            prepared, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=_onnx_nodes_of(prepared, _kept_in_float(model)),
        )  # fmt: skip
    return {"path": os.path.basename(path), "sha256": sha256_of(path), "input": {"dtype": "float32"},
            "quantization": "int8 QDQ, per-channel int8 weights, static uint8 activations (onnxruntime)" + _float_note(model)}  # fmt: skip


def compact_tensor_names(path: str) -> None:
    """Shorten the tensor names of the TFLite file at ``path`` to the class names along their module
    path (``Averaged/TimNet_0/TemporalAwareBlock_4/...``, the first of several): the converter writes
    whole Python paths, up to 600 characters a tensor and a fifth of a large network's file. The
    graph and its weights are untouched."""
    rename_tensors(path, lambda name: "/".join(part.rsplit(".", 1)[-1] for part in name.split(";;")[0].split("/")))


def rename_tensors(path: str, rename) -> None:
    """Give every tensor of the TFLite file at ``path`` the name ``rename(its name)``; the graph and
    its weights are untouched."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = rename(tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name or "")
    flatbuffer_utils.write_model(model, path)


def export_tflite_float(model: torch.nn.Module, calibration: np.ndarray, path: str) -> dict:
    """float32 TFLite of a :func:`deployable` model through litert-torch (for comparisons: rtser
    ships int8); ``calibration`` gives only the example input's shape."""
    with _quiet():
        import litert_torch

        example = (torch.from_numpy(calibration[:1, None].astype(np.float32)),)
        litert_torch.convert(model.eval(), example).export(path)
    compact_tensor_names(path)
    return {"path": os.path.basename(path), "sha256": sha256_of(path), "input": {"dtype": "float32"}, "quantization": "none (float32)"}


def export_tflite_int8(model: torch.nn.Module, calibration: np.ndarray, path: str) -> dict:
    """int8 TFLite of a :func:`deployable` model through litert-torch with PT2E static quantization
    calibrated on real windows."""
    with _quiet():
        import litert_torch
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        example = (torch.from_numpy(calibration[:1, None].astype(np.float32)),)
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        for name in _kept_in_float(model):
            quantizer.set_module_type(name, None)
        prepared = prepare_pt2e(torch.export.export(model.eval(), example).module(), quantizer)
        with torch.no_grad():
            for window in calibration:
                prepared(torch.from_numpy(window[None, None].astype(np.float32)))
        converted = convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(path)
    compact_tensor_names(path)
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=path).get_input_details()[0]
    scale, zero = details["quantization"]
    return {
        "path": os.path.basename(path), "sha256": sha256_of(path),
        "input": {"dtype": np.dtype(details["dtype"]).name, "scale": float(scale), "zero_point": int(zero)},
        "quantization": "int8 weights per-channel and activations (PT2E static, litert-torch)" + _float_note(model),
    }  # fmt: skip


def manifest_dict(spec: Manifest, networks: dict, training: dict, metrics: dict) -> dict:
    """The JSON manifest of an exported model."""
    return {
        "format": FORMAT,
        "name": spec.name,
        "labels": list(spec.labels),
        "sample_rate": spec.features.sample_rate,
        "features": spec.features.to_dict(),
        "window": {"seconds": spec.window.seconds, "hop_seconds": spec.window.hop_seconds,
                   "frames": spec.input_shape[2]},  # fmt: skip
        "input_shape": list(spec.input_shape),
        "normalization": spec.normalization.to_dict(),
        "speech_gate": dataclasses.asdict(spec.gate),
        "speech_detector": spec.speech_detector.to_dict(),
        "output": "probabilities",
        **({"calibration": metrics["calibration"]} if "calibration" in metrics else {}),
        "networks": networks,
        "training": training,
        "metrics": metrics,
    }


def export_model(model: torch.nn.Module, spec: Manifest, calibration: np.ndarray, folder: str,
                 training: dict, metrics: dict) -> dict:  # fmt: skip
    """Write ``model.tflite``, ``model.onnx`` and ``model.json`` into ``folder``, with a copy of the
    spec's speech detector network where it has one; return the manifest."""
    os.makedirs(folder, exist_ok=True)
    if spec.speech_detector.kind == "voice_network":
        shutil.copy2(os.path.join(spec.folder, spec.speech_detector.network), os.path.join(folder, spec.speech_detector.network))
    model = deployable(model)
    networks = {
        "tflite": export_tflite_int8(model, calibration, os.path.join(folder, "model.tflite")),
        "onnx": export_onnx_int8(model, calibration, os.path.join(folder, "model.onnx")),
    }
    manifest = manifest_dict(spec, networks, training, metrics)
    with open(os.path.join(folder, MANIFEST_NAME), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    return manifest
