"""The human-readable ``report.md`` of a training run."""

from __future__ import annotations

from .evaluate import artifact_names


def score_row(name: str, metrics: dict) -> str:
    """A table row: UA, WA, macro F1, utterances and those without a decision."""
    return f"| {name} | {metrics['ua']:.3f} | {metrics['wa']:.3f} | {metrics['macro_f1']:.3f} | {metrics['n']} | {metrics['no_decision']} |"


def score_table(metrics: dict, rows: str) -> list[str]:
    """The table of every artifact's scores, a row per part (``rows`` names what they count)."""
    lines = [f"| artifact / {rows} | UA | WA | macro F1 | utterances | no decision |", "|---|---|---|---|---|---|"]
    for kind in artifact_names(metrics):
        lines += [score_row(f"{kind} / {part}", values) for part, values in metrics[kind].items()]
    return lines


def held_out_table(summary: dict) -> list[str]:
    """The table of the held-out corpora's mean and lowest UA per artifact (``held_out_corpora``)."""
    lines = ["| artifact | 4 classes, mean | 4 classes, lowest | own classes, mean |", "|---|---|---|---|"]
    for kind, values in summary.items():
        lines.append(f"| {kind} | " + " | ".join(f"{v:.3f}" if v is not None else "–" for v in values.values()) + " |")
    return lines


def _names(speakers: list[str]) -> str:
    return ", ".join(speakers) or "none"


def write_report(path: str, name: str, command: str, metrics: dict, manifest: dict | None, seconds: float) -> None:
    """Tables of pooled UA/WA/F1 per artifact and corpus, per-fold UA, and how to reproduce them."""
    lines = [f"# Training report: {name}", "", f"Reproduce: `{command}`", "",
             f"This invocation ran {seconds / 60:.1f} min on this machine.", ""]  # fmt: skip
    if metrics:
        folds = metrics["folds"]
        lines += [f"## Speaker-independent cross-validation (pooled over {folds['pooled']} of {folds['of']} folds)", "",
                  f"Training epochs took {folds['training_minutes']:.0f} min summed over the folds (a run's folds may "
                  "have been trained by separate processes: see `--run-folds`).", ""]  # fmt: skip
        lines += score_table(metrics, "test utterances")
        lines += ["", "Artifacts: each test speaker's utterances streamed through one recognizer in a random order; "
                  "*alone*: each utterance through a recognizer of its own, as `rtser replay` hears one file."]  # fmt: skip
        if "held_out_corpora" in metrics:
            lines += ["", "Leave one corpus out, over the held-out corpora (UA; four shared classes: anger, happiness, neutral, sadness):", ""]
            lines += held_out_table(metrics["held_out_corpora"])
        lines += ["", "Per fold UA (float, int8 TFLite, int8 ONNX):", ""]
        for fold, values in metrics["per_fold_ua"].items():
            lines.append(f"- {fold}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
        lines += ["", "Test and validation speakers of each fold:", ""]
        for fold, speakers in metrics["protocol"].items():
            lines.append(f"- {fold}: test {', '.join(speakers['test'])}; validation {_names(speakers['validation'])}")
        lines += ["", "Confusion matrices: `confusion-float.png`, `confusion-tflite.png`, `confusion-onnx.png`."]
    if manifest:
        training = manifest["training"]
        lines += ["", "## Exported model", "",
                  f"- parameters: {training['parameters']}, MACs per window: {training['macs_per_window']}",
                  "- files: " + ", ".join(f"{k} {v['path']}" for k, v in manifest["networks"].items()),
                  f"- validation speakers: {_names(training['speakers']['validation'])}"]  # fmt: skip
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
