"""Short readable names for predicted clusters.

A predicted cluster takes, in this order:

1. the name of a named cluster of the same set (a teacher's, an analyst's, a reference) whose members overlap it
   enough (Jaccard index of the member positions at least ``min_overlap``);
2. the name of the nearest named cluster of the dataset (a :class:`NameBook` of mean embeddings) when the cosine
   of the mean embeddings is at least ``min_cosine``;
3. otherwise its most distinctive keywords against the rest of the set: class-based TF-IDF as BERTopic does
   (the members of a cluster are one document; a term's weight is its frequency in the cluster times
   ``log(1 + A / f)``, A the average number of terms per cluster and f the term's frequency in the whole set).

Pure: numpy and scikit-learn's ``CountVectorizer``, no encoder, no store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

DEFAULT_MIN_OVERLAP = 0.5
DEFAULT_MIN_COSINE = 0.6
DEFAULT_KEYWORDS = 3
MAX_NAME_CHARS = 60

NameSource = Literal["overlap", "nearest", "keywords"]


@dataclass(frozen=True)
class ClusterName:
    """A generated name, where it came from, and how sure (Jaccard, cosine or the top keyword's weight)."""

    name: str
    source: NameSource
    score: float


@dataclass(frozen=True)
class NamedClustering:
    """A named partition of the same set (positions per cluster, one name per cluster; "" is unnamed)."""

    clusters: Sequence[Sequence[int]]
    names: Sequence[str]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


class NameBook:
    """Named clusters of a dataset as mean embeddings: the nearest name to a new cluster.

    Clusters sharing a name (case and spacing aside) are pooled into one entry: the mean of their unit mean
    embeddings; the entry keeps the spelling seen most often.
    """

    def __init__(self, names: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != len(names):
            raise ValueError(f"a name book needs one vector per name: {len(names)} names, vectors {vectors.shape}")
        self.names = list(names)
        self.vectors = np.stack([_unit(v) for v in vectors]) if len(names) else vectors  # (K, D)

    @classmethod
    def build(cls, clusters: Iterable[tuple[str, np.ndarray]]) -> NameBook:
        """From (name, member embeddings of shape (M, D)) pairs; unnamed ("") clusters are skipped."""
        sums: dict[str, np.ndarray] = {}
        spellings: dict[str, Counter[str]] = {}
        for name, members in clusters:
            name = name.strip()
            members = np.asarray(members, dtype=np.float64)
            if not name or members.size == 0:
                continue
            key = _key(name)
            mean = _unit(np.stack([_unit(m) for m in members]).mean(axis=0))
            sums[key] = sums[key] + mean if key in sums else mean
            spellings.setdefault(key, Counter())[name] += 1
        keys = sorted(sums)
        names = [spellings[k].most_common(1)[0][0] for k in keys]
        dim = next(iter(sums.values())).shape[0] if sums else 0
        return cls(names, np.stack([sums[k] for k in keys]) if keys else np.zeros((0, dim)))

    def __len__(self) -> int:
        return len(self.names)

    def nearest(self, members: np.ndarray) -> tuple[str, float] | None:
        """The nearest name to a cluster given its members' embeddings (M, D), with the cosine; None if empty."""
        if not self.names:
            return None
        members = np.asarray(members, dtype=np.float64)
        query = _unit(np.stack([_unit(m) for m in members]).mean(axis=0))
        cosines = self.vectors @ query  # (K,)
        best = int(np.argmax(cosines))
        return self.names[best], float(cosines[best])


def _groups(labels: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Member positions per cluster id 0..K-1 (ids as :meth:`MergeTree.cut` gives them)."""
    labels = np.asarray(labels, dtype=np.int64)
    return [np.flatnonzero(labels == k).tolist() for k in range(int(labels.max()) + 1)] if labels.size else []


def keyword_names(texts: Sequence[str], labels: Sequence[int] | np.ndarray, *, top: int = DEFAULT_KEYWORDS
                  ) -> list[tuple[str, float]]:
    """Each cluster's ``top`` most distinctive terms (class-based TF-IDF) joined by ", ", with the top weight.

    A cluster without any term (digits, one-letter words) is named after its first member, cut to
    ``MAX_NAME_CHARS``, with weight 0.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    groups = _groups(labels)
    documents = [" ".join(texts[i] for i in members) for members in groups]
    fallback = [(texts[members[0]][:MAX_NAME_CHARS].strip(), 0.0) for members in groups]
    try:
        counts = CountVectorizer(stop_words="english").fit(documents)
    except ValueError:  # empty vocabulary: no cluster has a term
        return fallback
    matrix = counts.transform(documents).toarray().astype(np.float64)  # (K, V)
    terms = counts.get_feature_names_out()
    totals = matrix.sum(axis=1, keepdims=True)
    tf = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    average = float(totals.mean())
    idf = np.log1p(average / matrix.sum(axis=0))  # (V,): every column has a count
    weights = tf * idf
    names: list[tuple[str, float]] = []
    for k, row in enumerate(weights):
        order = sorted((j for j in np.flatnonzero(row > 0)), key=lambda j: (-row[j], terms[j]))[:top]
        if not order:
            names.append(fallback[k])
            continue
        names.append((", ".join(str(terms[j]) for j in order)[:MAX_NAME_CHARS], float(row[order[0]])))
    return names


def overlap_name(members: Sequence[int], named: Sequence[NamedClustering]) -> tuple[str, float] | None:
    """The named cluster (of ``named``, earlier ones first on ties) that best overlaps ``members``, by Jaccard."""
    mine = set(members)
    best: tuple[str, float] | None = None
    for clustering in named:
        for cluster, name in zip(clustering.clusters, clustering.names, strict=True):
            if not name.strip():
                continue
            other = set(cluster)
            jaccard = len(mine & other) / len(mine | other)
            if best is None or jaccard > best[1]:
                best = (name.strip(), jaccard)
    return best


def name_clusters(
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    embeddings: np.ndarray | None = None,
    book: NameBook | None = None,
    named: Sequence[NamedClustering] = (),
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    min_cosine: float = DEFAULT_MIN_COSINE,
    top: int = DEFAULT_KEYWORDS,
) -> list[ClusterName]:
    """One name per cluster of ``labels`` (cluster ids 0..K-1), in cluster id order.

    Args:
        texts: the set's entity texts.
        labels: cluster id per entity, shape (N,).
        embeddings: the entities' embeddings (N, D), needed for ``book``.
        book: named clusters of the dataset (nearest mean embedding).
        named: named clusterings of this same set, most trusted first (human, reference, teacher).
        min_overlap: the Jaccard index a same-set named cluster needs.
        min_cosine: the cosine the nearest name of ``book`` needs.
        top: keywords per name when no named cluster is close enough.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(texts),):
        raise ValueError(f"{labels.shape[0]} labels for {len(texts)} texts")
    if book is not None and len(book) and embeddings is None:
        raise ValueError("naming from a name book needs the entities' embeddings")
    groups = _groups(labels)
    keywords: list[tuple[str, float]] | None = None
    result: list[ClusterName] = []
    for k, members in enumerate(groups):
        found = overlap_name(members, named) if named else None
        if found is not None and found[1] >= min_overlap:
            result.append(ClusterName(found[0], "overlap", found[1]))
            continue
        near = book.nearest(np.asarray(embeddings)[members]) if book is not None and embeddings is not None else None
        if near is not None and near[1] >= min_cosine:
            result.append(ClusterName(near[0], "nearest", near[1]))
            continue
        if keywords is None:
            keywords = keyword_names(texts, labels, top=top)
        result.append(ClusterName(keywords[k][0], "keywords", keywords[k][1]))
    return result


def set_namer(book: NameBook | None = None, *, min_overlap: float = DEFAULT_MIN_OVERLAP,
              min_cosine: float = DEFAULT_MIN_COSINE, top: int = DEFAULT_KEYWORDS):
    """A namer for :class:`cactus.inference.streaming.StreamOptions`: an input set's own named clusters (when it
    is labelled with names) are matched by overlap first, then ``book``, then keywords."""
    from cactus.data.sets import EntitySet

    def namer(entity_set: EntitySet, labels: np.ndarray, embeddings: np.ndarray) -> list[str]:
        named = ([NamedClustering(entity_set.clusters, entity_set.cluster_names)]
                 if entity_set.clusters is not None and entity_set.cluster_names is not None else [])
        return [n.name for n in name_clusters(entity_set.texts, labels, embeddings=embeddings, book=book,
                                              named=named, min_overlap=min_overlap, min_cosine=min_cosine,
                                              top=top)]

    return namer
