"""Training, speaker-independent cross-validation and the final model of a recipe."""

from __future__ import annotations

import copy
import json
import os
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rtser.backends import load_backend
from rtser.manifest import Manifest, load_manifest

from .augment import Augmenter
from .config import RunConfig, config_dict
from .corpora import Utterance, data_root
from .evaluate import plot_confusion, scores, utterance_predictions
from .export import export_model
from .dataset import RunData
from .folds import final_split
from .models import build_model, footprint
from .windows import normalization_scale, runtime_windows, training_windows


def model_spec(config: RunConfig, scale: np.ndarray) -> Manifest:
    """The manifest (without network files yet) that a model of this recipe runs under."""
    return Manifest("", config.name, tuple(config.labels), config.features, config.window, config.speech_gate,
                    tuple(float(v) for v in scale), {}, {})  # fmt: skip


def focal_loss(logits, target, weight, gamma, smoothing):
    """Focal loss (Lin et al. 2017) over label-smoothed cross-entropy."""
    ce = nn.functional.cross_entropy(logits, target, weight=weight, reduction="none", label_smoothing=smoothing)
    p = torch.softmax(logits, -1).gather(1, target[:, None])[:, 0]
    return ((1 - p) ** gamma * ce).mean()


def predict_windows(model: nn.Module, windows: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    """The float model's probabilities for each utterance's stack of windows."""
    model.eval()
    flat = np.concatenate(windows) if windows else np.zeros((0,))
    out = []
    with torch.no_grad():
        for i in range(0, len(flat), batch):
            out.append(model(torch.from_numpy(flat[i : i + batch, None])).numpy())
    probs = np.concatenate(out) if out else np.zeros((0,))
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return [probs[bounds[i] : bounds[i + 1]] for i in range(len(windows))]


def backend_windows(folder: str, kind: str, windows: list[np.ndarray]) -> list[np.ndarray]:
    """An exported file's probabilities, as rtser's own backend computes them, window by window."""
    backend = load_backend(load_manifest(folder), kind)
    return [np.stack([backend.predict(w) for w in ws]) if len(ws) else np.zeros((0,)) for ws in windows]


class Trainer:
    """Trains one network on some speakers and selects its epoch on validation speakers."""

    def __init__(self, config: RunConfig, waves: list[np.ndarray], targets: np.ndarray, epochs: int):
        self.config, self.waves, self.targets, self.epochs = config, waves, targets, epochs
        torch.set_num_threads(config.train.threads)

    def fit(self, train_idx: list[int], val_idx: list[int], log_path: str, seed: int):
        """Train; return the best model (by validation UA), its spec, and the per-epoch history."""
        cfg, settings = self.config, self.config.train
        torch.manual_seed(seed)
        train_waves = [self.waves[i] for i in train_idx]
        spec = model_spec(self.config, normalization_scale(train_waves, model_spec(cfg, np.ones(cfg.features.n_features))))
        val_windows = runtime_windows([self.waves[i] for i in val_idx], spec)
        val_truth = self.targets[val_idx]
        model = build_model(cfg.model, len(cfg.labels), cfg.features.n_features)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, self.epochs))
        counts = np.bincount(self.targets[train_idx], minlength=len(cfg.labels)).astype(np.float32)
        weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(counts)) if settings.class_weights else None
        augmenter = Augmenter(cfg.augment, os.path.join(data_root(), "noise"), cfg.features.sample_rate, seed)
        best, best_ua, history, stale = None, -1.0, [], 0
        for epoch in range(self.epochs):
            started = time.time()
            x, y = training_windows(train_waves, self.targets[train_idx], spec, augmenter)
            model.train()
            order = np.random.default_rng(seed + epoch).permutation(len(x))
            total = 0.0
            batches = range(0, len(order), settings.batch_size)
            for start in tqdm(batches, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, unit="batch"):
                idx = order[start : start + settings.batch_size]
                logits = model.logits(torch.from_numpy(x[idx, None]))
                target = torch.from_numpy(y[idx])
                if settings.loss == "focal":
                    loss = focal_loss(logits, target, weight, settings.focal_gamma, settings.label_smoothing)
                else:
                    loss = nn.functional.cross_entropy(logits, target, weight=weight, label_smoothing=settings.label_smoothing)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            scheduler.step()
            val = scores(val_truth, utterance_predictions(predict_windows(model, val_windows)), cfg.labels)
            history.append({"epoch": epoch + 1, "loss": total / len(x), "val_ua": val["ua"], "val_wa": val["wa"],
                            "seconds": round(time.time() - started, 1)})  # fmt: skip
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(history[-1]) + "\n")
            tqdm.write(f"  epoch {epoch + 1}: loss {history[-1]['loss']:.3f} val UA {val['ua']:.3f}")
            if val["ua"] > best_ua:
                best, best_ua, stale = copy.deepcopy(model.state_dict()), val["ua"], 0
            else:
                stale += 1
                if stale >= settings.patience:
                    break
        model.load_state_dict(best)
        return model.eval(), spec, history


def plot_curves(history: list[dict], title: str, path: str) -> None:
    """Training loss and validation UA per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["val_ua"] for h in history], label="validation UA")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _indices(utterances: list[Utterance], speakers: frozenset[str]) -> list[int]:
    return [i for i, u in enumerate(utterances) if u.speaker in speakers]


def _breakdown(utterances, idx, truth, predictions, labels) -> dict:
    """Pooled scores, and per corpus."""
    out = {"all": scores(truth, predictions, labels)}
    for corpus in sorted({utterances[i].corpus for i in idx}):
        keep = np.array([utterances[i].corpus == corpus for i in idx])
        out[corpus] = scores(truth[keep], predictions[keep], labels)
    return out


def cross_validate(config: RunConfig, data: RunData, out: str) -> dict:
    """Train, export and evaluate each fold; pooled figures for float, int8 TFLite and int8 ONNX."""
    utterances, waves, targets = data.utterances, data.waves, data.targets
    trainer = Trainer(config, waves, targets, data.epochs)
    pooled = {"float": [], "tflite": [], "onnx": []}
    pooled_idx, per_fold = [], {}
    for k, fold in enumerate(data.folds):
        print(f"{fold.name}: test {sorted(fold.test)}, validation {sorted(fold.validation)}")
        fold_dir = os.path.join(out, fold.name)
        os.makedirs(fold_dir, exist_ok=True)
        train_idx, val_idx, test_idx = (_indices(utterances, s) for s in (fold.train, fold.validation, fold.test))
        model, spec, history = trainer.fit(train_idx, val_idx, os.path.join(fold_dir, "log.jsonl"), config.train.seed + k)
        plot_curves(history, fold.name, os.path.join(fold_dir, "curves.png"))
        test_windows = runtime_windows([waves[i] for i in test_idx], spec)
        calibration = _calibration(trainer, train_idx, spec)
        export_model(model, spec, calibration, os.path.join(fold_dir, "model"), {"fold": fold.name}, {})
        predictions = {
            "float": utterance_predictions(predict_windows(model, test_windows)),
            **{kind: utterance_predictions(backend_windows(os.path.join(fold_dir, "model"), kind, test_windows))
               for kind in ("tflite", "onnx")},
        }  # fmt: skip
        truth = targets[test_idx]
        per_fold[fold.name] = {kind: scores(truth, p, config.labels)["ua"] for kind, p in predictions.items()}
        print(f"{fold.name}: UA " + ", ".join(f"{k} {v:.3f}" for k, v in per_fold[fold.name].items()))
        for kind, p in predictions.items():
            pooled[kind].append(p)
        pooled_idx += test_idx
    truth = targets[pooled_idx]
    metrics = {kind: _breakdown(utterances, pooled_idx, truth, np.concatenate(p), config.labels) for kind, p in pooled.items()}
    metrics["per_fold_ua"] = per_fold
    metrics["protocol"] = {fold.name: {"test": sorted(fold.test), "validation": sorted(fold.validation)} for fold in data.folds}
    for kind in ("float", "tflite", "onnx"):
        plot_confusion(metrics[kind]["all"]["confusion"], config.labels, f"{config.name} {kind} (UA {metrics[kind]['all']['ua']:.3f})",
                       os.path.join(out, f"confusion-{kind}.png"))  # fmt: skip
    return metrics


def _calibration(trainer: Trainer, train_idx: list[int], spec: Manifest, count: int = 200) -> np.ndarray:
    """Real runtime windows from training speakers, for int8 calibration."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(train_idx, size=min(count, len(train_idx)), replace=False)
    windows = [w for ws in runtime_windows([trainer.waves[i] for i in chosen], spec) for w in ws[-1:]]
    return np.stack(windows)


def train_final(config: RunConfig, data: RunData, out: str, cv_metrics: dict) -> dict:
    """Train on all speakers but a few validation speakers and export the shipped model."""
    utterances = data.utterances
    split = final_split(utterances, config.validation_speakers_per_corpus, config.train.seed)
    trainer = Trainer(config, data.waves, data.targets, data.epochs)
    train_idx, val_idx = _indices(utterances, split.train), _indices(utterances, split.validation)
    final_dir = os.path.join(out, "final")
    os.makedirs(final_dir, exist_ok=True)
    model, spec, history = trainer.fit(train_idx, val_idx, os.path.join(final_dir, "log.jsonl"), config.train.seed)
    plot_curves(history, "final", os.path.join(final_dir, "curves.png"))
    x_shape = (1, *spec.input_shape[1:])
    training = {
        "recipe": config_dict(config),
        "architecture": config.model,
        **footprint(model, x_shape),
        "speakers": {"train": sorted(split.train), "validation": sorted(split.validation)},
        "epochs_run": len(history),
        "torch": torch.__version__,
    }
    summary = {kind: {part: round(v["ua"], 4) for part, v in cv_metrics[kind].items()} for kind in ("float", "tflite", "onnx")} if cv_metrics else {}
    metrics = {"protocol": "speaker-independent cross-validation (see report.md)", "ua": summary}
    return export_model(model, spec, _calibration(trainer, train_idx, spec), os.path.join(out, "model"), training, metrics)
