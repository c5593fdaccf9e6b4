"""The emotional speech corpora in the shared data folder, with labels in rtser's names."""

from __future__ import annotations

import csv
import functools
import glob
import os
from dataclasses import dataclass

EMODB_LABELS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
EMODB_FEMALE = {"08", "09", "13", "14", "16"}
RAVDESS_LABELS = {
    "01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
    "05": "anger", "06": "fear", "07": "disgust", "08": "surprise",
}  # fmt: skip
# Corpora built by ../shared/tools/add_corpora.py: a folder with a files.csv (file, label, speaker,
# sex, text) whose labels are rtser's names already, but for these.
LISTED_RENAMED = {
    "nemo": {},
    "ased": {},
    # TurEV-DB's non-emotional class is "sakin" (calm) and it has no neutral one: it is the corpus's
    # neutral reference, so it is read as neutral (RAVDESS, which has both, keeps its calm apart)
    "turev": {"calm": "neutral"},
}


class DataMissing(RuntimeError):
    """The data folder or a corpus in it is not there."""


@dataclass(frozen=True)
class Utterance:
    """One recording with its emotion and speaker."""

    path: str
    label: str
    speaker: str  # unique across corpora, e.g. "emodb-03", "ravdess-12"
    corpus: str
    female: bool | None  # None: not recorded


def data_root() -> str:
    """The shared data folder: ``$RTSER_DATA``, else ``../shared/data`` beside the checkout."""
    default = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    root = os.path.abspath(os.environ.get("RTSER_DATA", default))
    if not os.path.isdir(root):
        raise DataMissing(f"data folder {root} not found; set RTSER_DATA to the folder holding emodb/ and ravdess/")
    return root


def _require(folder: str, pattern: str, corpus: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(folder, pattern)))
    if not files:
        raise DataMissing(f"{corpus} not found: no {pattern} under {folder}")
    return files


def load_emodb(root: str | None = None) -> list[Utterance]:
    """All EMO-DB utterances (file names ``SSTTTEV.wav``)."""
    folder = os.path.join(root or data_root(), "emodb", "wav")
    out = []
    for path in _require(folder, "*.wav", "EMO-DB"):
        name = os.path.basename(path)
        speaker, emotion = name[:2], name[5]
        out.append(Utterance(path, EMODB_LABELS[emotion], f"emodb-{speaker}", "emodb", speaker in EMODB_FEMALE))
    return out


def load_ravdess(root: str | None = None) -> list[Utterance]:
    """All RAVDESS speech files (``MM-VV-EE-II-SS-RR-AA.flac``; even actors are female)."""
    folder = os.path.join(root or data_root(), "ravdess")
    out = []
    for path in _require(folder, "Actor_*/*.flac", "RAVDESS"):
        parts = os.path.splitext(os.path.basename(path))[0].split("-")
        actor = int(parts[6])
        out.append(Utterance(path, RAVDESS_LABELS[parts[2]], f"ravdess-{actor:02d}", "ravdess", actor % 2 == 0))
    return out


def load_listed(corpus: str, root: str | None = None) -> list[Utterance]:
    """All utterances of a corpus folder that lists its files in ``files.csv`` (nEMO, ASED,
    TurEV-DB as ../shared/tools/add_corpora.py builds them)."""
    folder = os.path.join(root or data_root(), corpus)
    listing = os.path.join(folder, "files.csv")
    if not os.path.isfile(listing):
        raise DataMissing(f"{corpus} not found: no files.csv in {folder} (build it with ../shared/tools/add_corpora.py: see the README)")
    renamed = LISTED_RENAMED[corpus]
    with open(listing, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sexes = {"f": True, "m": False}
    return [Utterance(os.path.join(folder, row["file"]), renamed.get(row["label"], row["label"]), f"{corpus}-{row['speaker']}",
                      corpus, sexes.get(row["sex"].strip().lower()[:1])) for row in rows]  # fmt: skip


LOADERS = {"emodb": load_emodb, "ravdess": load_ravdess} | {name: functools.partial(load_listed, name) for name in LISTED_RENAMED}


def load_corpora(names: list[str], labels: list[str] | None = None) -> list[Utterance]:
    """Utterances of the named corpora, keeping only ``labels`` when given."""
    unknown = sorted(set(names) - set(LOADERS))
    if unknown:
        raise ValueError(f"unknown corpus {', '.join(unknown)} (known: {', '.join(LOADERS)})")
    utterances = [u for name in names for u in LOADERS[name]()]
    if labels is not None:
        utterances = [u for u in utterances if u.label in labels]
    return utterances
