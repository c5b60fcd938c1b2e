"""Domain shift: how far a dataset's texts are from the data a model was trained on.

At training time the model card keeps a small *fingerprint* of each domain it learnt from (in
``card.training_data["domains"]``): the mean of the model's entity embeddings over a sample of the texts, and the
most frequent words. When the model clusters new texts, :func:`domain_shift` compares their fingerprint with the
nearest stored one; :func:`shift_warning` turns a far one into a sentence for the CLI, the jobs and the app.
Cards written before fingerprints existed have none: nothing is compared, nothing is warned.

Everything here is numpy and plain Python; embedding the texts is the caller's job.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Words kept per fingerprint, and texts / sets sampled to make one.
VOCABULARY_SIZE = 500
SAMPLE_SETS = 64
#: Below these, the texts are called far from the training data (see :func:`domain_shift`).
MIN_VOCABULARY_OVERLAP = 0.25
MIN_EMBEDDING_COSINE = 0.5

_WORD = re.compile(r"[^\W\d_]{2,}")


def words(text: str) -> list[str]:
    """The case-folded words of ``text`` (letters only, at least two of them)."""
    return _WORD.findall(text.casefold())


def vocabulary(texts: Iterable[str], size: int = VOCABULARY_SIZE) -> list[str]:
    """The ``size`` most frequent words of ``texts`` (ties by alphabetical order)."""
    counts = Counter(word for text in texts for word in words(text))
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]]


def mean_embedding(embeddings: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of all rows of some (N_i, D) embedding arrays, L2-normalised (a zero vector stays zero)."""
    arrays = [np.asarray(e, dtype=np.float64) for e in embeddings if len(e)]
    if not arrays:
        raise ValueError("a fingerprint needs at least one embedded text")
    mean = np.concatenate(arrays).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def fingerprint(texts: Sequence[str], embeddings: Iterable[np.ndarray], *, source: str | None) -> dict[str, Any]:
    """One domain's fingerprint as stored in a model card (JSON: rounded floats, a word list)."""
    return {"source": source, "texts": len(texts),
            "mean_embedding": [round(float(x), 5) for x in mean_embedding(embeddings)],
            "vocabulary": vocabulary(texts)}


def vocabulary_overlap(texts: Iterable[str], known: Iterable[str]) -> float:
    """The share of the word occurrences in ``texts`` that are among the ``known`` words (0 when no words)."""
    known_set = set(known)
    found = [word in known_set for text in texts for word in words(text)]
    return float(np.mean(found)) if found else 0.0


@dataclass(frozen=True)
class DomainShift:
    """How the new texts compare with the nearest training domain."""

    embedding_cosine: float  # cosine of the mean embeddings (1: same direction)
    vocabulary_overlap: float  # share of the new texts' words among the training domain's frequent words
    source: str | None  # the nearest training domain, as the card names it

    @property
    def far(self) -> bool:
        return self.embedding_cosine < MIN_EMBEDDING_COSINE or self.vocabulary_overlap < MIN_VOCABULARY_OVERLAP


def stored_domains(training_data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fingerprints a card's ``training_data`` holds (none for cards written before they existed)."""
    domains = training_data.get("domains") if isinstance(training_data, Mapping) else None
    if not isinstance(domains, list):
        return []
    return [d for d in domains if isinstance(d, dict) and isinstance(d.get("mean_embedding"), list)
            and isinstance(d.get("vocabulary"), list)]


def domain_shift(texts: Sequence[str], embeddings: Iterable[np.ndarray], domains: Sequence[Mapping[str, Any]]
                 ) -> DomainShift | None:
    """The new texts against the nearest stored domain (by embedding cosine, then overlap); None without any."""
    if not domains:
        return None
    mean = mean_embedding(embeddings)
    best: DomainShift | None = None
    for domain in domains:
        stored = np.asarray(domain["mean_embedding"], dtype=np.float64)
        if stored.shape != mean.shape:
            continue  # another backbone's width: not comparable
        norm = float(np.linalg.norm(stored))
        cosine = float(mean @ stored / norm) if norm > 0 else 0.0
        shift = DomainShift(cosine, vocabulary_overlap(texts, domain["vocabulary"]), domain.get("source"))
        if best is None or (shift.embedding_cosine, shift.vocabulary_overlap) > (best.embedding_cosine,
                                                                                best.vocabulary_overlap):
            best = shift
    return best


def shift_warning(shift: DomainShift | None) -> str | None:
    """A one-sentence warning when the texts are far from the model's training data, else None."""
    if shift is None or not shift.far:
        return None
    return (f"these texts look far from the data this model was trained on (mean-embedding cosine "
            f"{shift.embedding_cosine:.2f}, {shift.vocabulary_overlap:.0%} of their words are among the training "
            f"data's frequent words{f', nearest: {shift.source}' if shift.source else ''}): its clusters may be "
            "worse than an untrained encoder's here. Adapt it first (`cactus adapt MODEL TEXTS --out NEW`), or "
            "cut each set where its clusters are most distinct, which needs no labels (`cactus predict --cut "
            "silhouette`; on the Models page, 'Cut ... sets without labels'), or re-choose the threshold on a "
            "few labelled sets of this data.")


def sample_sets(sets: Sequence[Sequence[str]], limit: int = SAMPLE_SETS) -> list[list[str]]:
    """Up to ``limit`` sets spread evenly over ``sets`` (the sample a fingerprint is made from)."""
    if len(sets) <= limit:
        return [list(s) for s in sets]
    picks = np.linspace(0, len(sets) - 1, limit).round().astype(int)
    return [list(sets[i]) for i in picks]


def model_fingerprint(encoder, sets: Sequence[Sequence[str]], *, source: str | None, device: str | None = None,
                      batch_size: int = 16) -> dict[str, Any]:
    """The fingerprint of ``sets`` (a sample of them) under a set encoder."""
    sample = [s for s in sample_sets(sets) if s]
    embeddings = encoder.embed(sample, batch_size=batch_size, device=device)
    return fingerprint([t for s in sample for t in s], embeddings, source=source)


def check_shift(encoder, sets: Sequence[Sequence[str]], training_data: Mapping[str, Any], *,
                device: str | None = None, batch_size: int = 16) -> DomainShift | None:
    """Compare a sample of ``sets`` with the card's stored domains under ``encoder``; None when the card has none."""
    domains = stored_domains(training_data)
    sample = [s for s in sample_sets(sets) if s]
    if not domains or not sample:
        return None
    embeddings = encoder.embed(sample, batch_size=batch_size, device=device)
    return domain_shift([t for s in sample for t in s], embeddings, domains)
