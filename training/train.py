"""Training, speaker-independent cross-validation and the final model of a recipe."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn
from tqdm import tqdm

from rtser.backends import load_backend
from rtser.manifest import Manifest, load_manifest
from rtser.normalization import NormalizationSpec
from rtser.schema import ConfigError, build

from .augment import Augmenter
from .config import RunConfig, config_dict, detector_network_path
from .corpora import Utterance, data_root
from .calibration import calibration_report
from .evaluate import KINDS, artifact_names, breakdown, held_out_summary, plot_confusion, scores, utterance_predictions, utterance_probabilities
from .export import export_model
from .feature_bank import FeatureBank
from .dataset import RunData
from .distillation import check_teachers, distillation_loss, load_teachers, soft_targets
from .folds import final_split
from .sampling import balanced_weights, epoch_order
from .models import build_model, footprint
from .models.base import Averaged
from .models.statistics import StatisticsClassifier, choose_l2
from .windows import SpeechHistory, heard_alone, runtime_windows, stream_positions, training_windows

NETWORK_SEED_STRIDE = 1000  # the seeds of a recipe's networks lie this far apart (a fold's seed is the recipe's plus its index)


def model_spec(config: RunConfig, normalization: NormalizationSpec) -> Manifest:
    """The manifest (without network files yet) that a model of this recipe runs under; its folder
    holds the recipe's speech detector network, if it has one."""
    folder = os.path.dirname(detector_network_path(config)) if config.detector_network else ""
    return Manifest(folder, config.name, tuple(config.labels), config.features, config.window, config.speech_gate,
                    config.speech_detector, normalization, 1.0, {}, {})  # fmt: skip


def focal_loss(logits, target, weight, gamma, smoothing):
    """Focal loss (Lin et al. 2017) over label-smoothed cross-entropy."""
    ce = nn.functional.cross_entropy(logits, target, weight=weight, reduction="none", label_smoothing=smoothing)
    p = torch.softmax(logits, -1).gather(1, target[:, None])[:, 0]
    return ((1 - p) ** gamma * ce).mean()


def mixup(batch: int, alpha: float, rng: np.random.Generator) -> tuple[float, torch.Tensor]:
    """Mixup (Zhang et al. 2018): the share of each example kept, drawn from Beta(alpha, alpha), and
    the partner each is mixed with; alpha 0 keeps examples whole."""
    if alpha <= 0:
        return 1.0, torch.arange(batch)
    return float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(batch))


def training_device(name: str) -> torch.device:
    """The device networks train on: ``auto`` is a CUDA GPU when torch sees one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but torch sees no CUDA GPU")
    return torch.device(name)


def predict_windows(model: nn.Module, windows: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    """The float model's probabilities for each utterance's stack of windows (on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    flat = np.concatenate(windows) if windows else np.zeros((0,))
    out = []
    with torch.no_grad():
        for i in range(0, len(flat), batch):
            out.append(model(torch.from_numpy(flat[i : i + batch, None]).to(device)).cpu().numpy())
    probs = np.concatenate(out) if out else np.zeros((0,))
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return [probs[bounds[i] : bounds[i + 1]] for i in range(len(windows))]


def backend_windows(folder: str, kind: str, windows: list[np.ndarray]) -> list[np.ndarray]:
    """An exported file's probabilities, as rtser's own backend computes them, window by window."""
    backend = load_backend(load_manifest(folder), kind)
    return [np.stack([backend.predict(w) for w in ws]) if len(ws) else np.zeros((0,)) for ws in windows]


class Trainer:
    """Trains one network on some speakers and selects its epoch on validation speakers."""

    def __init__(self, config: RunConfig, data: RunData):
        self.config, self.waves, self.targets, self.epochs = config, data.waves, data.targets, data.epochs
        self.speakers = [u.speaker for u in data.utterances]
        self.features = FeatureBank(config, data.utterances, data.waves)
        self.corpora = np.array([u.corpus for u in data.utterances])
        self.device = training_device(config.train.device)
        torch.set_num_threads(config.train.threads)

    def windows(self, idx: list[int], spec: Manifest, train_idx: Sequence[int] = (), alone: bool = False) -> list[np.ndarray]:
        """The runtime's windows of these utterances, each speaker's streamed through one recognizer
        (each utterance through its own where ``alone``, as ``rtser replay`` hears one file); the
        speakers of ``train_idx`` (those the spec's prior was made from) as strangers to it."""
        waves, speakers = [self.waves[i] for i in idx], [self.speakers[i] for i in idx]
        if alone:
            speakers = heard_alone(speakers, idx)
        return runtime_windows(waves, speakers, spec, training_speakers=[self.speakers[i] for i in train_idx])

    def fit(self, train_idx: list[int], val_idx: list[int], log_path: str, seed: int, teachers: Sequence[nn.Module] = ()):
        """Train ``train.networks`` networks (seeds ``seed``, ``seed + NETWORK_SEED_STRIDE``, ...) on the
        same speakers, each learning from ``teachers`` too where there are any; return the model (the
        network, or the networks' probabilities averaged in one graph, then averaged with the
        statistics classifier where the recipe has one), its spec, and the per-epoch history (each
        record naming its network)."""
        cfg = self.config
        open(log_path, "w", encoding="utf-8").close()  # a stopped process's records come back with its saved epochs
        train_speakers = [self.speakers[i] for i in train_idx]
        spec = model_spec(cfg, SpeechHistory(self.features.clean(train_idx), train_speakers, cfg).prior())
        validation = self.windows(val_idx, spec), self.targets[val_idx]
        history: list[dict] = []
        networks = [self._network(train_idx, spec, validation, log_path, seed + NETWORK_SEED_STRIDE * m, m, history, teachers).to("cpu", memory_format=torch.contiguous_format)
                    for m in range(cfg.train.networks)]  # fmt: skip
        for m in range(cfg.train.networks):  # all trained: their states are no longer needed
            EpochProgress.clear(log_path, m)
        model = networks[0]
        if len(networks) > 1:
            model = Averaged(networks).eval()
            self._log_validation(model, *validation, log_path, time.time(), {"networks": len(networks)},
                                 f"the {len(networks)} networks' probabilities averaged")  # fmt: skip
        if cfg.train.statistics_classifier:
            fit_idx = train_idx + val_idx if cfg.train.statistics_with_validation else train_idx
            model = self._with_statistics(model, fit_idx, train_idx, spec, *validation, log_path)
        return model, spec, history

    def _network(self, train_idx: list[int], spec: Manifest, validation, log_path: str, seed: int, number: int, history: list[dict],
                 teachers: Sequence[nn.Module]) -> nn.Module:  # fmt: skip
        """Train one network; return it (the best epoch by validation UA, or the weights averaged over
        the last ``average_last`` epochs); its epochs are logged and appended to ``history``. Its state
        is saved after each epoch, and the network once trained, so a process stopped part-way resumes
        at the next epoch and does not train again a network it finished."""
        cfg, settings = self.config, self.config.train
        progress = EpochProgress(log_path, number, seed, self.epochs, self.device)
        trained = progress.trained()
        if trained is not None:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(trained["log"])
            history.extend(trained["records"])
            tqdm.write(f"  network {number + 1}/{settings.networks}: trained before, loaded")
            return trained["model"]
        log_start = os.path.getsize(log_path)  # this network's part of the log
        torch.manual_seed(seed)
        train_speakers = [self.speakers[i] for i in train_idx]
        val_windows, val_truth = validation
        model = build_model(cfg.model, len(cfg.labels), cfg.features.n_features).to(self.device, memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, self.epochs))
        counts = np.bincount(self.targets[train_idx], minlength=len(cfg.labels)).astype(np.float32)
        weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(counts), device=self.device) if settings.class_weights else None
        draws = balanced_weights(self.corpora[train_idx], self.targets[train_idx]) if settings.balanced_sampling else None
        mixer = np.random.default_rng(seed)

        def loss_of(logits, target):
            if settings.loss == "focal":
                return focal_loss(logits, target, weight, settings.focal_gamma, settings.label_smoothing)
            return nn.functional.cross_entropy(logits, target, weight=weight, label_smoothing=settings.label_smoothing)

        augmenter = Augmenter(cfg.augment, os.path.join(data_root(), "noise"), cfg.features.sample_rate, seed)
        best, best_ua, stale = None, -1.0, 0
        averaged = AveragedModel(model) if settings.average_last else None
        saved = progress.restore({"model": model, "optimizer": optimizer, "scheduler": scheduler, "averaged": averaged},
                                 {"mixer": mixer.bit_generator, "augmenter": augmenter.rng.bit_generator})  # fmt: skip
        if saved is not None:
            best, best_ua, stale = saved["best"], saved["best_ua"], saved["stale"]
            with open(log_path, "a", encoding="utf-8") as log:
                log.writelines(json.dumps(record) + "\n" for record in saved["records"])
            history.extend(saved["records"])
            tqdm.write(f"  network {number + 1}/{settings.networks}: resumed after epoch {len(saved['records'])}")
        for epoch in range(0 if saved is None else len(saved["records"]), self.epochs):
            started = time.time()
            heard = self.features.heard(epoch % settings.channel_copies, train_idx)
            x, y, kept = training_windows(heard, self.targets[train_idx], train_speakers, cfg, spec, augmenter)
            model.train()
            order = epoch_order(len(x), None if draws is None else draws[kept], np.random.default_rng(seed + epoch))
            total = 0.0
            usable = len(order) - 1 if len(order) % settings.batch_size == 1 else len(order)  # a last batch of one: batch norm cannot train on it
            batches = range(0, usable, settings.batch_size)
            desc = f"network {number + 1}/{settings.networks}, epoch {epoch + 1}/{self.epochs}"
            for start in tqdm(batches, desc=desc, leave=False, unit="batch"):
                idx = order[start : start + settings.batch_size]
                inputs = torch.from_numpy(x[idx, None]).to(self.device).contiguous(memory_format=torch.channels_last)
                target = torch.from_numpy(y[idx]).to(self.device)
                share, partner = mixup(len(idx), settings.mixup_alpha, mixer)
                partner = partner.to(self.device)
                mixed = share * inputs + (1 - share) * inputs[partner]
                logits = model.logits(mixed)
                loss = share * loss_of(logits, target) + (1 - share) * loss_of(logits, target[partner])
                if teachers:
                    taught, temperature = settings.distillation_weight, settings.distillation_temperature
                    loss = (1 - taught) * loss + taught * distillation_loss(logits, soft_targets(teachers, mixed, temperature), temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            scheduler.step()
            if averaged is not None and epoch >= self.epochs - settings.average_last:
                averaged.update_parameters(model)
            val = self._validation(model, val_windows, val_truth)
            history.append({"network": number, "epoch": epoch + 1, "loss": total / len(x), **val, "seconds": round(time.time() - started, 1)})
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(history[-1]) + "\n")
            tqdm.write(f"  {desc}: loss {history[-1]['loss']:.3f} {_shown(val)}")
            if val["val_ua"] is not None and val["val_ua"] > best_ua:
                best, best_ua, stale = copy.deepcopy(model.state_dict()), val["val_ua"], 0
            else:
                stale += 1
                if stale >= settings.patience:
                    break
            if epoch + 1 < self.epochs:  # (after the last, the network is finished at once)
                progress.save(best=best, best_ua=best_ua, stale=stale, records=[r for r in history if r["network"] == number])
        if averaged is not None:
            model = self._averaged(averaged, x, val_windows, val_truth, log_path, number)
        else:
            model.load_state_dict(best)
            model.eval()
        with open(log_path, encoding="utf-8") as log:
            log.seek(log_start)
            progress.finish(model, [r for r in history if r["network"] == number], log.read())
        return model

    def _averaged(self, averaged: AveragedModel, x: np.ndarray, val_windows, val_truth, log_path: str, number: int) -> nn.Module:
        """The averaged weights with batch-norm statistics recomputed on the last epoch's training
        windows (Izmailov et al. 2018); its validation UA is logged beside the epochs'."""
        started, size = time.time(), self.config.train.batch_size
        update_bn([torch.from_numpy(x[i : i + size, None]) for i in range(0, len(x), size)], averaged, device=self.device)
        model = averaged.module.eval()
        self._log_validation(model, val_windows, val_truth, log_path, started, {"network": number, "averaged_epochs": int(averaged.n_averaged)},
                             f"weights averaged over the last {int(averaged.n_averaged)} epochs")  # fmt: skip
        return model

    def _with_statistics(self, network: nn.Module, fit_idx: list[int], train_idx: list[int], spec: Manifest, val_windows, val_truth, log_path: str) -> nn.Module:
        """The network averaged with a statistics classifier fitted on these utterances' runtime
        windows (:mod:`training.models.statistics`); its validation UA is logged."""
        started = time.time()
        windows = self.windows(fit_idx, spec, train_idx)
        x = np.concatenate([w for w in windows if len(w)])[:, None]
        counts = [len(w) for w in windows]
        y = np.repeat(self.targets[fit_idx], counts).astype(np.int64)
        l2 = self.config.train.statistics_l2
        if isinstance(l2, list):
            l2 = choose_l2(x, y, np.repeat(np.asarray(self.speakers)[fit_idx], counts), l2, len(self.config.labels))
        statistics = StatisticsClassifier(len(self.config.labels), self.config.features.n_features).fit(x, y, l2)
        model = Averaged([network, statistics]).eval()
        self._log_validation(model, val_windows, val_truth, log_path, started, {"statistics_classifier_windows": len(x), "statistics_l2": l2},
                             f"with the statistics classifier (fitted on {len(x)} windows, weight penalty {l2})")  # fmt: skip
        return model

    def _validation(self, model: nn.Module, val_windows, val_truth) -> dict:
        """The model's validation UA and WA (None for a recipe without validation speakers)."""
        if not len(val_truth):
            return {"val_ua": None, "val_wa": None}
        val = scores(val_truth, utterance_predictions(predict_windows(model, val_windows)), self.config.labels)
        return {"val_ua": val["ua"], "val_wa": val["wa"]}

    def _log_validation(self, model: nn.Module, val_windows, val_truth, log_path: str, started: float, record: dict, what: str) -> None:
        """Append the validation UA of a model made after the epochs to the log."""
        val = self._validation(model, val_windows, val_truth)
        record = {**record, **val, "seconds": round(time.time() - started, 1)}
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        tqdm.write(f"  {what}: {_shown(val)}")


def _shown(val: dict) -> str:
    """A validation figure for the progress lines."""
    return "no validation speakers" if val["val_ua"] is None else f"val UA {val['val_ua']:.3f}"


def plot_curves(history: list[dict], title: str, path: str) -> None:
    """Training loss and validation UA per epoch, for each network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    networks = sorted({h["network"] for h in history})
    for number in networks:
        records = [h for h in history if h["network"] == number]
        which = f" (network {number + 1})" if len(networks) > 1 else ""
        epochs = [h["epoch"] for h in records]
        ax.plot(epochs, [h["loss"] for h in records], label=f"train loss{which}")
        if any(h["val_ua"] is not None for h in records):
            ax.plot(epochs, [h["val_ua"] for h in records], label=f"validation UA{which}")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def speaker_indices(utterances: list[Utterance], speakers: frozenset[str]) -> list[int]:
    """Positions in ``utterances`` of those spoken by one of ``speakers``."""
    return [i for i, u in enumerate(utterances) if u.speaker in speakers]


def cross_validate(config: RunConfig, data: RunData, out: str, run_folds: set[int] | None = None) -> dict:
    """Train, export and evaluate each fold; pooled figures for float, int8 TFLite and int8 ONNX,
    returned and written to ``out/metrics.json``.

    Each fold's decisions are kept in its folder (``fold.json``) and a fold already there is not
    trained again: an interrupted run resumes (a fold part-way through at its next epoch), and
    ``run_folds`` (fold indices) lets several processes share one run folder's folds. Pooled figures
    cover every fold with results, and say which.
    """
    unknown = sorted(k for k in run_folds or () if k >= len(data.folds))
    if unknown:
        raise ConfigError(f"fold {unknown[0]} does not exist: this run has folds 0-{len(data.folds) - 1}")
    claim = _claim(config, data, out)
    check_teachers(config, claim["folds"])  # the same test speakers, or a teacher heard them
    trainer = Trainer(config, data)
    done = []
    for k, fold in enumerate(data.folds):
        fold_dir = os.path.join(out, fold.name)
        if not os.path.exists(os.path.join(fold_dir, "fold.json")):
            if run_folds is not None and k not in run_folds:
                continue
            _run_fold(config, data, trainer, fold, k, fold_dir)
        with open(os.path.join(fold_dir, "fold.json"), encoding="utf-8") as handle:
            done.append((fold, json.load(handle), _training_minutes(os.path.join(fold_dir, "log.jsonl"))))
    metrics = _pooled_metrics(config, data, done)
    _write_json(os.path.join(out, "metrics.json"), metrics)
    for kind in KINDS:
        plot_confusion(metrics[kind]["all"]["confusion"], config.labels, f"{config.name} {kind} (UA {metrics[kind]['all']['ua']:.3f})",
                       os.path.join(out, f"confusion-{kind}.png"))  # fmt: skip
    return metrics


def _claim(config: RunConfig, data: RunData, out: str) -> dict:
    """Record what the run folder's fold results come from (and return it: the recipe, epochs and
    each fold's test speakers); refuse a folder holding another recipe's."""
    claim = {"recipe": _comparable(config), "epochs": data.epochs, "folds": [sorted(f.test) for f in data.folds]}
    path = os.path.join(out, "cross_validation.json")
    if not os.path.exists(path):
        os.makedirs(out, exist_ok=True)
        _write_json(path, claim)
        return claim
    with open(path, encoding="utf-8") as handle:
        stored = json.load(handle)
    for setting in ("threads", "device"):
        stored["recipe"]["train"].pop(setting, None)
    stored["recipe"]["name"] = config.name  # neither is part of the recipe (see _comparable)
    stored["recipe"].setdefault("normalization", {"method": "window_cmn"})  # folders from before speaker normalisation
    try:  # settings added since the folder was written are read as their defaults
        stored["recipe"] = _comparable(build(RunConfig, stored["recipe"]))
    except ConfigError:
        stored["recipe"] = None  # a setting this code no longer has: another recipe
    if stored != claim:
        raise ConfigError(f"{out} holds fold results of another recipe, epochs or folds; choose another --out or remove it")
    return claim


def _comparable(config: RunConfig) -> dict:
    """The recipe as JSON data, without its name and thread count (a label, and float rounding only,
    so a run may resume under another name or with another thread count)."""
    recipe = config_dict(config)
    recipe["name"] = None
    recipe["train"]["threads"] = recipe["train"]["device"] = None
    return json.loads(json.dumps(recipe))


class EpochProgress:
    """One network's training state, kept beside the log while it trains: after its last finished
    epoch (weights, optimizer, schedule, random generators, epoch records), so a process stopped
    part-way resumes from it and ends as if it had never stopped; then the network itself once it is
    trained, until the fold's other networks are (:meth:`clear`)."""

    def __init__(self, log_path: str, number: int, seed: int, epochs: int, device: torch.device):
        self.path = self.path_of(log_path, number)
        self.identity = {"seed": seed, "epochs": epochs}  # a state of another training is not resumed
        self.device = device
        self.parts: dict = {}
        self.generators: dict = {}
        self._saved = self._load()  # what an earlier process kept of this training, read once

    @staticmethod
    def path_of(log_path: str, number: int) -> str:
        """Where network ``number`` of the training logged at ``log_path`` keeps its state."""
        return f"{os.path.splitext(log_path)[0]}.network{number}.pt"

    def _load(self) -> dict | None:
        if not os.path.exists(self.path):
            return None
        saved = torch.load(self.path, map_location="cpu", weights_only=False)
        return saved if saved["identity"] == self.identity else None

    def trained(self) -> dict | None:
        """The network trained before (``model``, its epoch ``records`` and its part of the ``log``),
        or None where it was not."""
        return None if self._saved is None else self._saved.get("trained")

    def restore(self, parts: dict, generators: dict) -> dict | None:
        """Note what the epochs change (``parts``: what has a ``state_dict``, None for a part the
        recipe has not; ``generators``: numpy bit generators) and put the saved state back into
        them; return the loop's own values (``best``, ``best_ua``, ``stale``, ``records``), or None
        where nothing of this training was saved."""
        self.parts, self.generators = parts, generators
        saved = self._saved
        if saved is None or "loop" not in saved:
            return None
        for name, part in self.parts.items():
            if part is not None:
                part.load_state_dict(saved["parts"][name])
        for name, generator in self.generators.items():
            generator.state = saved["generators"][name]
        torch.set_rng_state(saved["torch"])
        if saved["cuda"] is not None:  # dropout draws on the GPU where training runs there
            torch.cuda.set_rng_state(saved["cuda"], self.device)
        return saved["loop"]

    def save(self, **loop) -> None:
        """Keep the state after the epoch just finished, whole or not at all."""
        state = {"identity": self.identity, "loop": loop, "torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                 "parts": {name: None if part is None else part.state_dict() for name, part in self.parts.items()},
                 "generators": {name: generator.state for name, generator in self.generators.items()}}  # fmt: skip
        _write_whole(self.path, lambda partial: torch.save(state, partial))

    def finish(self, model: nn.Module, records: list[dict], log: str) -> None:
        """Keep the trained network, its epoch records and its part of the log instead of its epochs' state."""
        state = {"identity": self.identity, "trained": {"model": model, "records": records, "log": log}}
        _write_whole(self.path, lambda partial: torch.save(state, partial))

    @classmethod
    def clear(cls, log_path: str, number: int) -> None:
        """Network ``number`` of the training logged at ``log_path`` is no longer needed: its state goes."""
        path = cls.path_of(log_path, number)
        if os.path.exists(path):
            os.remove(path)


def _write_whole(path: str, write) -> None:
    """``write(partial_path)``, then the file moved into place, so that a process reading ``path``
    at the same time sees all of it or nothing."""
    partial = f"{path}.{os.getpid()}.tmp"
    write(partial)
    os.replace(partial, path)


def _write_json(path: str, data) -> None:
    """Write JSON whole (see :func:`_write_whole`)."""

    def write(partial: str) -> None:
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)

    _write_whole(path, write)


def _run_fold(config: RunConfig, data: RunData, trainer: Trainer, fold, k: int, fold_dir: str) -> None:
    """Train one fold, export its int8 files, and write every artifact's test decisions to fold.json."""
    utterances, targets = data.utterances, data.targets
    print(f"{fold.name}: test {sorted(fold.test)}, validation {sorted(fold.validation)}")
    os.makedirs(fold_dir, exist_ok=True)
    train_idx, val_idx, test_idx = (speaker_indices(utterances, s) for s in (fold.train, fold.validation, fold.test))
    model, spec = _trained(trainer, train_idx, val_idx, fold_dir, config.train.seed + k, fold.name)
    test_windows = trainer.windows(test_idx, spec)
    export_model(model, spec, _calibration(trainer, train_idx, spec), os.path.join(fold_dir, "model"), {"fold": fold.name}, {})
    window_probs = _window_probs(model, os.path.join(fold_dir, "model"), test_windows)
    predictions = {kind: utterance_predictions(probs) for kind, probs in window_probs.items()}
    alone = _window_probs(model, os.path.join(fold_dir, "model"), trainer.windows(test_idx, spec, alone=True))
    ua = {kind: scores(targets[test_idx], p, config.labels)["ua"] for kind, p in predictions.items()}
    print(f"{fold.name}: UA " + ", ".join(f"{kind} {v:.3f}" for kind, v in ua.items()))
    result = {"test": [utterances[i].path for i in test_idx], "validation": sorted(fold.validation),
              "predictions": {kind: p.tolist() for kind, p in predictions.items()},
              "predictions_alone": {kind: utterance_predictions(probs).tolist() for kind, probs in alone.items()},
              "probabilities": {kind: utterance_probabilities(probs) for kind, probs in window_probs.items()}}  # fmt: skip
    _write_json(os.path.join(fold_dir, "fold.json"), result)


def _window_probs(model: nn.Module, folder: str, windows: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each utterance's window probabilities from the float model and from both int8 files of
    ``folder`` as rtser's backends run them."""
    return {"float": predict_windows(model, windows), **{kind: backend_windows(folder, kind, windows) for kind in KINDS[1:]}}


def _trained(trainer: Trainer, train_idx: list[int], val_idx: list[int], folder: str, seed: int, title: str) -> tuple[nn.Module, Manifest]:
    """A fold's trained model and its spec: trained here (log and curves written, the model kept in
    ``trained.pt``), or loaded from ``trained.pt`` where an earlier process trained it and stopped
    before the fold's export and evaluation were done."""
    checkpoint = os.path.join(folder, "trained.pt")
    if os.path.exists(checkpoint):
        saved = torch.load(checkpoint, weights_only=False)
        print(f"{title}: trained model loaded from {checkpoint}")
        # the recipe's spec around the normalisation fitted in training (the run folder's claim
        # vouches that the recipe is this one), so code that reads newer settings serves older folds
        return saved["model"].eval(), model_spec(trainer.config, saved["spec"].normalization)
    log_path = os.path.join(folder, "log.jsonl")
    teachers = load_teachers(trainer.config, os.path.basename(folder), trainer.device)
    model, spec, history = trainer.fit(train_idx, val_idx, log_path, seed, teachers)
    plot_curves(history, title, os.path.join(folder, "curves.png"))
    _write_whole(checkpoint, lambda partial: torch.save({"model": model, "spec": spec}, partial))
    return model, spec


def _training_minutes(log_path: str) -> float:
    """Minutes the fold's epochs took, from its log (whichever process trained it)."""
    with open(log_path, encoding="utf-8") as log:
        return sum(json.loads(line)["seconds"] for line in log if line.strip()) / 60


def _pooled_metrics(config: RunConfig, data: RunData, done: list) -> dict:
    """Scores pooled over the folds' stored decisions, per fold UA, and the protocol."""
    index = {u.path: i for i, u in enumerate(data.utterances)}
    alone = all("predictions_alone" in result for _, result, _ in done)
    artifacts = {kind: ("predictions", kind) for kind in KINDS} | ({f"{kind} alone": ("predictions_alone", kind) for kind in KINDS} if alone else {})
    pooled_idx, positions, pooled, per_fold = [], [], {name: [] for name in artifacts}, {}
    for fold, result, _ in done:
        missing = [p for p in result["test"] if p not in index]
        if missing:
            raise ValueError(f"{fold.name}: stored results name {missing[0]}, which this run's data lacks")
        test_idx = [index[p] for p in result["test"]]
        positions.append(stream_positions([data.utterances[i].speaker for i in test_idx]))
        per_fold[fold.name] = {}
        for name, (entry, kind) in artifacts.items():
            predicted = np.asarray(result[entry][kind], dtype=int)
            per_fold[fold.name][name] = scores(data.targets[test_idx], predicted, config.labels)["ua"]
            pooled[name].append(predicted)
        pooled_idx += test_idx
    truth = data.targets[pooled_idx]
    metrics = {name: breakdown(data.utterances, pooled_idx, truth, np.concatenate(p), config.labels,
                                None if name.endswith(" alone") else np.concatenate(positions))
               for name, p in pooled.items()}  # fmt: skip
    if config.protocol == "leave_one_corpus_out":
        metrics["held_out_corpora"] = held_out_summary(metrics, sorted({data.utterances[i].corpus for i in pooled_idx}))
    metrics["per_fold_ua"] = per_fold
    if all("probabilities" in result for _, result, _ in done):
        metrics["calibration"] = _calibration_of(done, truth)
    metrics["protocol"] = {fold.name: {"test": sorted(fold.test), "validation": result["validation"]} for fold, result, _ in done}
    metrics["folds"] = {"pooled": len(done), "of": len(data.folds), "training_minutes": round(sum(m for *_, m in done), 1)}
    return metrics


def _calibration_of(done: list, truth: np.ndarray, kind: str = "tflite") -> dict:
    """Temperature scaling of the int8 TFLite utterance probabilities (what rtser runs by default),
    fitted on the folds' test decisions; utterances with no window are left out."""
    probs = [p for _, result, _ in done for p in result["probabilities"][kind]]
    folds = np.concatenate([np.full(len(result["test"]), k) for k, (_, result, _) in enumerate(done)])
    kept = np.array([p is not None for p in probs])
    matrix = np.array([p for p in probs if p is not None], dtype=np.float64)
    return {"artifact": kind, **calibration_report(matrix / matrix.sum(axis=1, keepdims=True), truth[kept], folds[kept])}


def _calibration(trainer: Trainer, train_idx: list[int], spec: Manifest, count: int = 200) -> np.ndarray:
    """Real runtime windows from training speakers, for int8 calibration."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(train_idx, size=min(count, len(train_idx)), replace=False)
    windows = [w for ws in trainer.windows(sorted(chosen), spec, train_idx) for w in ws[-1:]]
    return np.stack(windows)


def train_final(config: RunConfig, data: RunData, out: str, cv_metrics: dict) -> dict:
    """Train on all speakers but a few validation speakers and export the shipped model."""
    utterances = data.utterances
    split = final_split(utterances, config.validation_speakers_per_corpus, config.train.seed)
    trainer = Trainer(config, data)
    train_idx, val_idx = speaker_indices(utterances, split.train), speaker_indices(utterances, split.validation)
    final_dir = os.path.join(out, "final")
    os.makedirs(final_dir, exist_ok=True)
    model, spec = _trained(trainer, train_idx, val_idx, final_dir, config.train.seed, "final")
    with open(os.path.join(final_dir, "log.jsonl"), encoding="utf-8") as log:
        history = [record for record in map(json.loads, filter(str.strip, log)) if "epoch" in record]
    x_shape = (1, *spec.input_shape[1:])
    training = {
        "recipe": config_dict(config),
        "architecture": config.model,
        **footprint(model, x_shape),
        "speakers": {"train": sorted(split.train), "validation": sorted(split.validation)},
        "epochs_run": [sum(h["network"] == m for h in history) for m in range(config.train.networks)],
        "torch": torch.__version__,
        "training_minutes": round(_training_minutes(os.path.join(final_dir, "log.jsonl")), 1),
    }
    summary = {name: {part: round(v["ua"], 4) for part, v in cv_metrics[name].items()} for name in artifact_names(cv_metrics)}
    metrics = {"protocol": "speaker-independent cross-validation (see report.md)", "ua": summary}
    if cv_metrics and "calibration" in cv_metrics:
        metrics["calibration"] = cv_metrics["calibration"]
    return export_model(model, spec, _calibration(trainer, train_idx, spec), os.path.join(out, "model"), training, metrics)
