"""Streaming prediction: sets in, clustered sets out, in input order, with memory bounded by a window.

Three stages run at once (a pipeline): a reader thread parses and tokenizes a window of sets; the calling thread
packs them into batches under a token budget (sets of similar size together) and runs the encoder; a writer thread
cuts each set's average-link tree at the threshold and hands the sets, in input order, to the sink. Queues of two
windows between the stages bound the memory whatever the number of sets.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cactus.data.sets import EntitySet
from cactus.inference.cluster import MergeTree, check_threshold
from cactus.inference.heap import release_free_heap
from cactus.inference.per_set_cut import set_threshold
from cactus.inference.review_priority import uncertainty
from cactus.inference.streaming_defaults import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_WINDOW, DTYPES
from cactus.inference.threshold import check_cut

_DONE = object()

Namer = Callable[[EntitySet, np.ndarray, np.ndarray], list[str]]
"""Names a clustered set's clusters: (the input set, cluster id per entity (N,), embeddings (N, D)) -> names."""


@dataclass(frozen=True)
class StreamOptions:
    """How :func:`predict_stream` clusters: threshold, attention mode, batching, and what it adds.

    ``namer`` names every predicted cluster (``cluster_names``, with ``"cluster_names_generated": true``);
    ``with_uncertainty`` adds ``"uncertainty"``: the share of the set's merges that lie near the threshold
    (:func:`cactus.inference.review_priority.uncertainty`). With ``cut="silhouette"`` each set of 3 or more
    entities is cut at its own threshold (:mod:`cactus.inference.per_set_cut`), recorded as ``"set_threshold"``.
    """

    threshold: float
    cut: str = "threshold"
    mode: str | None = None
    with_similarity: bool = False
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    window: int = DEFAULT_WINDOW
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, float32 elsewhere; or bfloat16, float32
    namer: Namer | None = None
    with_uncertainty: bool = False

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        check_cut(self.cut)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.max_batch_tokens, bool) or not isinstance(self.max_batch_tokens, int) \
                or self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be a positive integer, got {self.max_batch_tokens!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive integer, got {self.window!r}")


def token_batches(costs: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Group set indices into batches, largest sets first, so that ``len(batch) * max cost <= max_batch_tokens``.

    A set's cost is its token count; the bound counts the padding a batch of unequal sets carries. A set larger
    than the budget forms a batch of its own.
    """
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * costs[batches[-1][0]] <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class _Stage(threading.Thread):
    """A daemon thread whose exception is kept for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # handed to the calling thread
            self.error = exc


def _windows(sets: Iterable[EntitySet], size: int) -> Iterator[list[EntitySet]]:
    window: list[EntitySet] = []
    for entity_set in sets:
        window.append(entity_set)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _put(q: queue.Queue, item: Any, stop: threading.Event, consumer: threading.Thread) -> bool:
    """Put ``item`` unless the pipeline is stopping or its consumer has died; False then."""
    while not stop.is_set() and consumer.is_alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, producer: _Stage) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set() or not producer.is_alive():
                try:
                    return q.get_nowait()
                except queue.Empty:
                    return _DONE


def predict_stream(encoder, sets: Iterable[EntitySet], emit: Callable[[EntitySet], None], options: StreamOptions,
                   *, device: Any = None, progress: Callable[[int], None] | None = None) -> int:
    """Cluster every set of ``sets`` with ``encoder`` and pass each result to ``emit``, in input order.

    Args:
        encoder: a :class:`~cactus.encoders.SetEncoder` (put in eval mode; no gradients).
        sets: any iterable, consumed once (a file reader).
        emit: receives each clustered set (with ``similarity`` when ``options.with_similarity``).
        options: threshold, mode, token budget and window.
        device: where to run (default: where the encoder is).
        progress: called with the number of sets just emitted.

    Returns:
        the number of sets emitted.
    """
    from cactus.inference.graphs import EncoderForward

    if device is not None:
        encoder.to(device)
    stop = threading.Event()
    tokenized: queue.Queue = queue.Queue(maxsize=2)
    embedded: queue.Queue = queue.Queue(maxsize=2)
    emitted = 0

    def read() -> None:
        for window in _windows(sets, options.window):
            ids = encoder.tokenize_entities([s.texts for s in window])
            if not _put(tokenized, (window, ids), stop, main_stage):
                return
        _put(tokenized, _DONE, stop, main_stage)

    def write() -> None:
        nonlocal emitted
        while True:
            item = _get(embedded, stop, main_stage)
            if item is _DONE:
                return
            window, sims, embeddings = item
            for i, (entity_set, sim) in enumerate(zip(window, sims, strict=True)):
                tree = MergeTree(sim)
                threshold = set_threshold(sim, options.threshold, options.cut, tree=tree)
                labels = tree.cut(threshold)
                names = options.namer(entity_set, labels, embeddings[i]) if options.namer is not None else None
                clustered = entity_set.with_labels(labels, names)
                if names is not None:
                    clustered.extra["cluster_names_generated"] = True
                if options.cut != "threshold":
                    clustered.extra["set_threshold"] = round(threshold, 5)
                if options.with_uncertainty:
                    clustered.extra["uncertainty"] = round(uncertainty(tree, threshold), 5)
                if options.with_similarity:
                    clustered.similarity = np.round(sim, 5).tolist()
                emit(clustered)
                emitted += 1
            release_free_heap()  # else the resident size grows with the number of sets (see cactus.inference.heap)
            if progress is not None:
                progress(len(window))

    reader = _Stage(read, "cactus-predict-read")
    main_stage = threading.current_thread()
    writer = _Stage(write, "cactus-predict-write")
    was_training = encoder.training
    encoder.eval()
    reader.start()
    writer.start()
    try:
        forward = EncoderForward(encoder, options.mode, dtype=options.dtype)
        while True:
            item = _get(tokenized, stop, reader)
            if item is _DONE:
                break
            window, ids = item
            embeddings = forward.embed(ids, options.max_batch_tokens)
            sims = [np.clip(emb @ emb.T, -1.0, 1.0).astype(np.float64) for emb in embeddings]
            kept = list(embeddings) if options.namer is not None else [None] * len(window)
            if not _put(embedded, (window, sims, kept), stop, writer):
                break
        if reader.error is None:
            _put(embedded, _DONE, stop, writer)
            writer.join()
    finally:
        stop.set()
        reader.join()
        writer.join()
        encoder.train(was_training)
    for stage in (reader, writer):
        if stage.error is not None:
            raise stage.error
    return emitted


def embed_sets(encoder, sets: Iterable[EntitySet], *, mode: str | None = None,
               max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> Iterator[tuple[EntitySet, np.ndarray]]:
    """Each set with its entities' embeddings (N, D), in input order, a window at a time (no threads)."""
    from cactus.inference.graphs import EncoderForward

    was_training = encoder.training
    encoder.eval()
    try:
        forward = EncoderForward(encoder, mode)
        for window in _windows(sets, DEFAULT_WINDOW):
            ids = encoder.tokenize_entities([s.texts for s in window])
            yield from zip(window, forward.embed(ids, max_batch_tokens), strict=True)
            release_free_heap()
    finally:
        encoder.train(was_training)


def name_book(encoder, labelled: Iterable[EntitySet], *, mode: str | None = None,
              max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS):
    """A :class:`~cactus.inference.names.NameBook` of the named clusters of ``labelled`` sets, embedded by
    ``encoder`` (sets without names are skipped)."""
    from cactus.inference.names import NameBook

    named = (s for s in labelled if s.clusters is not None and s.cluster_names is not None)

    def clusters() -> Iterator[tuple[str, np.ndarray]]:
        for entity_set, embeddings in embed_sets(encoder, named, mode=mode, max_batch_tokens=max_batch_tokens):
            for members, name in zip(entity_set.clusters or [], entity_set.cluster_names or [], strict=True):
                yield name, embeddings[members]

    return NameBook.build(clusters())
