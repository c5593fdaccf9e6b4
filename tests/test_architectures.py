"""The literature's architectures: what each promises structurally, and that every one of them
trains, exports to int8 TFLite and ONNX, and runs in ``rtser replay`` (smoke comparison)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from rtser.features import extract
from rtser.manifest import load_manifest
from rtser.schema import ConfigError
from training.export import export_model
from training.models import ARCHITECTURES, build_model, deployable, footprint
from training.models.cnn_lstm import CnnLstm
from training.models.base import Averaged
from training.models.statistics import StatisticsClassifier, choose_l2, time_statistics
from training.models.timnet import CausalConv, SineKernel
from training.train import backend_windows

from .conftest import DEFAULT_MODEL, ROOT, SAMPLE, run_rtser

FEATURES = {"lightsernet": 40, "cnn_lstm": 64, "attention_fcn": 64, "timnet": 39, "cktim": 39, "statistics_mlp": 42}


SETTINGS = [({"architecture": name}, FEATURES[name]) for name in sorted(ARCHITECTURES)] + [
    ({"architecture": "lightsernet", "stem_stride": 2}, 42),
    ({"architecture": "lightsernet", "stem_stride": 2, "chunk_frames": 50}, 42),
    ({"architecture": "attention_fcn", "chunk_frames": 50}, 64),
    ({"architecture": "attention_fcn", "stem_stride": 2, "first_pool": [2, 1]}, 42),
]


@pytest.mark.parametrize("settings, n_features", SETTINGS)
def test_every_architecture_gives_probabilities_and_its_deployable_form_agrees(settings, n_features):
    torch.manual_seed(0)
    model = build_model(settings, 7, n_features).eval()
    x = torch.randn(3, 1, 297, n_features)
    with torch.no_grad():
        probs, baked = model(x), deployable(model)(x)
    assert probs.shape == (3, 7) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(probs, baked, atol=1e-5)
    assert footprint(model, (1, 1, 297, n_features))["macs_per_window"] > 0


@pytest.mark.parametrize("architecture", ["lightsernet", "attention_fcn"])
def test_a_chunked_network_judges_a_window_by_chunks_a_stream_one_chunk_on_would_share(architecture):
    torch.manual_seed(0)
    model = build_model({"architecture": architecture, "chunk_frames": 50}, 6, 42).eval()
    stream = torch.randn(1, 1, 350, 42)
    with torch.no_grad():
        chunk_embeddings = [model.encoder.embed(stream[:, :, k * 50 : (k + 1) * 50]) for k in range(7)]
        for shift in (0, 1):  # two windows of 300 frames, one chunk apart: five of their six chunks are the same
            expected = model.encoder.classify(torch.stack(chunk_embeddings[shift : shift + 6]).mean(0))
            assert torch.allclose(model.logits(stream[:, :, shift * 50 : shift * 50 + 300]), expected, atol=1e-5)
    assert model.chunk_starts(297) == [0, 47, 97, 147, 197, 247]  # the first chunk overlaps the second
    with pytest.raises(ValueError, match="cannot be chunked"):
        build_model({"architecture": "timnet", "chunk_frames": 50}, 6, 39)


def test_window_statistics_are_each_features_mean_deviation_and_change():
    frames = torch.randn(2, 297, 5) * torch.arange(1, 6) + 3
    stats = time_statistics(frames).numpy()
    x = frames.numpy().astype(np.float64)
    expected = np.concatenate([x.mean(1), x.std(1), np.abs(np.diff(x, axis=1)).mean(1)], axis=1)
    assert np.allclose(stats, expected, rtol=1e-4, atol=1e-4)


def test_statistics_classifier_learns_what_window_statistics_tell_and_is_averaged_with_the_network():
    torch.manual_seed(0)
    # three classes of windows told apart only by their statistics: louder feature 0, livelier feature 1, steadier feature 2
    targets = np.repeat(np.arange(3), 40)
    windows = np.random.default_rng(0).standard_normal((120, 1, 297, 40)).astype(np.float32)
    windows[targets == 0, :, :, 0] += 1.0
    windows[targets == 1, :, :, 1] *= 2.0
    windows[targets == 2, :, :, 2] = np.repeat(windows[targets == 2, :, ::10, 2], 10, axis=-1)[..., :297]
    statistics = StatisticsClassifier(3, 40).fit(windows, targets, l2=0.01)
    stats = time_statistics(torch.from_numpy(windows[:, 0]))
    assert torch.allclose(statistics.centre, stats.mean(0)) and torch.allclose(statistics.scale, stats.std(0))
    with torch.no_grad():
        assert (statistics(torch.from_numpy(windows)).argmax(1).numpy() == targets).mean() > 0.95
        network = build_model({"architecture": "lightsernet", "width": 0.25}, 3, 40).eval()
        both = Averaged([network, statistics]).eval()
        x = torch.from_numpy(windows[:4])
        expected = (network(x) + statistics(x)) / 2
        assert torch.allclose(both(x), expected, atol=1e-6) and torch.allclose(torch.softmax(both.logits(x), -1), expected, atol=1e-5)
        assert torch.allclose(deployable(both)(x), expected, atol=1e-6)


def test_the_weight_penalty_chosen_on_held_out_speakers_is_light_for_a_real_cue_and_heavy_for_none():
    rng = np.random.default_rng(0)
    targets = np.tile(np.arange(3), 60)
    speakers = np.repeat(np.arange(6), 30).astype(str)
    windows = rng.standard_normal((180, 1, 60, 8)).astype(np.float32)
    grid = [0.001, 1.0]
    assert choose_l2(windows, targets, speakers, grid, 3) == 1.0  # nothing to learn: the strongest penalty
    windows[:, :, :, 0] += 0.5 * targets[:, None, None]  # class k: feature 0 louder, for every speaker
    assert choose_l2(windows, targets, speakers, grid, 3) == 0.001
    with pytest.raises(ConfigError, match="two or more speakers"):
        choose_l2(windows, targets, np.full(180, "only"), grid, 3)


def test_int8_files_give_probabilities_up_to_one_beyond_what_the_calibration_windows_reached(tmp_path):
    spec = load_manifest(DEFAULT_MODEL)
    n_classes, n_features = len(spec.labels), spec.input_shape[-1]
    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(n_classes), 60)

    def windows_of(*classes: np.ndarray) -> np.ndarray:  # class k: feature k louder, which the statistics classifier reads
        windows = rng.standard_normal((len(targets), 1, 297, n_features)).astype(np.float32)
        for shown in classes:
            windows[np.arange(len(targets)), 0, :, shown] += 3.0
        return windows

    windows = windows_of(targets)
    torch.manual_seed(0)
    networks = Averaged([build_model({"architecture": "lightsernet", "width": 0.25}, n_classes, n_features) for _ in range(2)])  # as train.networks: 2 ships
    model = Averaged([networks, StatisticsClassifier(n_classes, n_features).fit(windows, targets, l2=0.03)]).eval()
    calibration = windows_of(targets, (targets + 1) % n_classes, (targets + 2) % n_classes)[::6, 0]  # three classes at once: none as sure as one
    export_model(model, spec, calibration, str(tmp_path), {}, {})
    with torch.no_grad():
        expected = model(torch.from_numpy(windows)).numpy()
        assert expected.max() > 1.5 * model(torch.from_numpy(calibration[:, None])).max()
    for kind in ("tflite", "onnx"):
        (probs,) = backend_windows(str(tmp_path), kind, [windows[:, 0]])
        assert np.abs(probs.sum(axis=1) - 1).max() < 0.02 and np.abs(probs - expected).max() < 0.1, kind


@pytest.mark.parametrize("pooling, steps", [("paper", 3), ("sequence", 38)])
def test_cnn_lstm_pooling_decides_how_many_steps_the_lstm_sees(pooling, steps):
    model = CnnLstm(6, 64, width=0.25, hidden=8, pooling=pooling).eval()
    seen = []
    model.lstm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[1]))
    with torch.no_grad():
        model(torch.randn(1, 1, 297, 64))
    assert seen == [steps]


@pytest.mark.parametrize("conv", [torch.nn.Conv1d(4, 4, 2, dilation=8), SineKernel(4, 4, span=64, taps=9)])
def test_temporal_convolutions_are_causal(conv):
    causal = CausalConv(conv).eval()
    x = torch.randn(1, 4, 200)
    changed = x.clone()
    changed[..., 120:] += 1.0  # the future of step 119
    with torch.no_grad():
        before, after = causal(x), causal(changed)
    assert before.shape == x.shape
    assert torch.equal(before[..., :120], after[..., :120]) and not torch.equal(before[..., 120:], after[..., 120:])


def test_continuous_kernel_bakes_into_the_convolution_it_generates():
    kernel = SineKernel(3, 5, span=32, taps=9, omega=25.0)
    conv = kernel.baked()
    assert conv.kernel_size == (9,) and conv.dilation == (4,)
    x = torch.randn(2, 3, 100)
    with torch.no_grad():
        assert torch.allclose(kernel(x), conv(x), atol=1e-6)


def test_every_architecture_trains_exports_and_runs_in_rtser(tmp_path):
    out = tmp_path / "compare"
    env = dict(os.environ, RTSER_CACHE=str(tmp_path / "cache"))
    protocol = os.path.join(ROOT, "training", "configs", "emodb_loso.yaml")
    done = subprocess.run([sys.executable, "-m", "training", "compare", "--smoke", "--protocol", protocol, "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((out / "comparison.json").read_text())
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(ROOT, "training", "configs", "architectures")))
    assert sorted(r["architecture"] for r in rows) == names
    table = (out / "comparison.md").read_text()
    for row in rows:
        assert f"| {row['architecture']} |" in table
        assert all(0 <= row["ua"][kind] <= 1 for kind in ("float", "tflite", "onnx"))
        assert row["kb"]["tflite"] > 0 and row["latency_ms"]["onnx"] > 0
        model = out / row["run"] / row["folds"][0] / "model"
        for backend in ("tflite", "onnx"):
            replay = run_rtser("replay", SAMPLE, "--model", str(model), "--backend", backend)
            assert replay.returncode == 0 and replay.stderr == "", replay.stderr
            assert any(json.loads(line)["type"] == "emotion" for line in replay.stdout.splitlines())
    assert (out / "comparison.png").stat().st_size > 0


def test_compact_tensor_names_shrink_a_tflite_file_and_change_no_output(tmp_path):
    """The converter names tensors by whole Python module paths; the exports shorten them to class
    names, and the same file then gives the same outputs bit for bit. (The shipped file was
    shortened when it was exported: its tensors get module paths again first.)"""
    from ai_edge_litert.interpreter import Interpreter

    from training.export import compact_tensor_names, rename_tensors

    path = tmp_path / "model.tflite"
    shutil.copy(os.path.join(DEFAULT_MODEL, "model.tflite"), path)
    rename_tensors(str(path), lambda name: "/".join(f"training.models.network.{part}" for part in name.split("/")))
    speech = soundfile.read(os.path.join(ROOT, "rtser", "samples", "emodb-six-emotions.flac"), dtype="float32")[0]
    frames = extract(speech, load_manifest(DEFAULT_MODEL).features)

    def outputs():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
        n = given["shape"][2]
        results = []
        for start in range(0, len(frames) - n, n // 2):
            interpreter.set_tensor(given["index"], frames[None, None, start : start + n].astype(given["dtype"]))
            interpreter.invoke()
            results.append(interpreter.get_tensor(taken["index"]).copy())
        names = [t["name"] for t in interpreter.get_tensor_details()]
        return np.array(results), names

    before, long_names = outputs()
    size = path.stat().st_size
    compact_tensor_names(str(path))
    after, short_names = outputs()
    assert len(before) >= 4 and np.array_equal(before, after)
    assert path.stat().st_size < size and max(map(len, short_names)) < max(map(len, long_names))
    assert not any("training.models." in name for name in short_names) and any("training.models." in name for name in long_names)


def test_int8_exports_run_the_stem_in_float_quantize_its_map_once_pooled_and_pool_by_convolution(tmp_path):
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    from training.export import export_onnx_int8, export_tflite_int8

    torch.manual_seed(0)
    model = build_model({"architecture": "lightsernet", "width": 0.25}, 6, 42).eval()
    calibration = np.random.default_rng(0).standard_normal((40, 297, 42)).astype(np.float32)
    deployed = deployable(model)
    export_tflite_int8(deployed, calibration, str(tmp_path / "model.tflite"))
    export_onnx_int8(deployed, calibration, str(tmp_path / "model.onnx"))

    interpreter = Interpreter(model_path=str(tmp_path / "model.tflite"))
    interpreter.allocate_tensors()
    shapes = {}
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            tensor = interpreter._get_tensor_details(index, 0)
            shapes.setdefault(op["op_name"], []).append((np.dtype(tensor["dtype"]).name, tuple(tensor["shape"])))
    full_size = [(dtype, shape) for outputs in shapes.values() for dtype, shape in outputs if len(shape) == 4 and shape[1] == 297]
    assert full_size and all(dtype == "float32" for dtype, _ in full_size)  # the stem's full-size maps stay float
    assert ("int8", (1, 148, 21, 8)) in shapes["QUANTIZE"]  # quantized once pooled
    assert "AVERAGE_POOL_2D" not in shapes  # every average pool is a depthwise convolution

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    first_convs = [node for node in graph.node if node.op_type == "Conv" and producer.get(node.input[0]) != "DequantizeLinear"]
    assert len(first_convs) >= 3  # the three paths' convolutions read float, not dequantized int8

    expected = deployed(torch.from_numpy(calibration[:8, None])).detach().numpy()
    interpreter = Interpreter(model_path=str(tmp_path / "model.tflite"))
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert np.dtype(given["dtype"]) == np.float32
    for window, probs in zip(calibration[:8], expected):
        interpreter.set_tensor(given["index"], window[None, None])
        interpreter.invoke()
        assert np.abs(interpreter.get_tensor(taken["index"])[0] - probs).max() < 0.1


def test_int8_onnx_runs_every_quantized_convolution_as_an_integer_kernel(tmp_path):
    # TIM-Net's block inputs feed both a convolution and the gate's product: with int8 activations
    # onnxruntime left those convolutions in float between dequantize and quantize (x86: 1.7 times the time)
    import onnx
    import onnxruntime

    from training.export import export_onnx_int8

    torch.manual_seed(0)
    model = build_model({"architecture": "timnet", "filters": 8, "scales": 3}, 6, 39).eval()
    calibration = np.random.default_rng(0).standard_normal((20, 297, 39)).astype(np.float32)
    export_onnx_int8(deployable(model), calibration, str(tmp_path / "model.onnx"))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), options, providers=["CPUExecutionProvider"])

    exported = [node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    optimized = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "Conv" not in optimized and optimized.count("QLinearConv") == exported.count("Conv") == 2 + 2 * 2 * 3
