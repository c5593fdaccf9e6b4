"""Speaker-independent folds: no speaker is ever in two of train, validation and test."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .corpora import Utterance


@dataclass(frozen=True)
class Fold:
    """Speakers of one split."""

    name: str
    test: frozenset[str]
    validation: frozenset[str]
    train: frozenset[str]


def _speakers(utterances: list[Utterance], corpus: str) -> tuple[list[str], list[str]]:
    """The corpus's female speakers and the others (male, or of sex not recorded)."""
    female = sorted({u.speaker for u in utterances if u.corpus == corpus and u.female is True})
    others = sorted({u.speaker for u in utterances if u.corpus == corpus and u.female is not True})
    return female, others


def test_groups(utterances: list[Utterance], corpus: str, n_folds: int) -> list[list[str]]:
    """Partition a corpus's speakers into ``n_folds`` groups balanced by sex (n_folds = number of
    speakers gives leave-one-speaker-out)."""
    female, male = _speakers(utterances, corpus)
    speakers = female + male
    if not speakers:
        return [[] for _ in range(n_folds)]
    if n_folds >= len(speakers):
        return [[s] for s in speakers]
    groups: list[list[str]] = [[] for _ in range(n_folds)]
    for i, speaker in enumerate(female + male):
        groups[i % n_folds].append(speaker)
    return groups


def _pick_validation(utterances: list[Utterance], exclude: set[str], per_corpus: int, rng: random.Random) -> set[str]:
    """``per_corpus`` speakers of each corpus not in ``exclude``, alternating female and male."""
    chosen: set[str] = set()
    for corpus in sorted({u.corpus for u in utterances}):
        pools = [[s for s in pool if s not in exclude] for pool in _speakers(utterances, corpus)]
        for i in range(per_corpus):
            pool = pools[i % 2] or pools[(i + 1) % 2]
            if pool:
                chosen.add(pool.pop(rng.randrange(len(pool))))
    return chosen


def make_folds(
    utterances: list[Utterance], n_folds: dict[str, int], validation_per_corpus: int = 2, seed: int = 0
) -> list[Fold]:
    """Folds over all corpora at once: fold k tests the k-th speaker group of every corpus named in
    ``n_folds`` (a corpus not named there only trains), and takes ``validation_per_corpus``
    validation speakers (alternating sex) of each corpus from the rest."""
    corpora = sorted({u.corpus for u in utterances} & set(n_folds))
    groups = {c: test_groups(utterances, c, n_folds[c]) for c in corpora}
    rng = random.Random(seed)
    everyone = {u.speaker for u in utterances}
    folds = []
    for k in range(max(n_folds[c] for c in corpora)):
        test = {s for c in corpora if k < len(groups[c]) for s in groups[c][k]}
        validation = _pick_validation(utterances, test, validation_per_corpus, rng)
        train = everyone - test - validation
        folds.append(Fold(f"fold{k:02d}", frozenset(test), frozenset(validation), frozenset(train)))
    return folds


def corpus_folds(utterances: list[Utterance], validation_per_corpus: int = 2, seed: int = 0) -> list[Fold]:
    """Leave one corpus out: fold per corpus (``without-<corpus>``) testing all of its speakers,
    with ``validation_per_corpus`` validation speakers of each other corpus and the rest training."""
    rng = random.Random(seed)
    everyone = {u.speaker for u in utterances}
    folds = []
    for corpus in sorted({u.corpus for u in utterances}):
        test = {u.speaker for u in utterances if u.corpus == corpus}
        validation = _pick_validation([u for u in utterances if u.corpus != corpus], test, validation_per_corpus, rng)
        folds.append(Fold(f"without-{corpus}", frozenset(test), frozenset(validation), frozenset(everyone - test - validation)))
    return folds


def final_split(utterances: list[Utterance], validation_per_corpus: int = 2, seed: int = 0) -> Fold:
    """The split for the shipped model: every speaker trains except a few validation speakers."""
    validation = _pick_validation(utterances, set(), validation_per_corpus, random.Random(seed))
    everyone = {u.speaker for u in utterances}
    return Fold("final", frozenset(), frozenset(validation), frozenset(everyone - validation))
