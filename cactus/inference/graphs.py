"""The inference forward of prediction: eager PyTorch, or on CUDA replayed from CUDA graphs over bucketed shapes.

Eager PyTorch launches every kernel from Python; for the small encoders of this project on a GPU that launch cost,
not the arithmetic, bounds the speed. A CUDA graph records the kernels of one forward once and replays them with
one call (``bench/encoders.py``'s ``+graph`` rows: 1.7x to 4.2x the eager speed). A graph replays fixed kernels on
fixed tensors, so batches are padded to a few shapes (buckets): sets of up to ``entities`` entities of up to
``length`` tokens, ``sets`` of them per batch, each a power of two (:func:`bucket_of`), packed by
:func:`~cactus.encoders.packing.pack_fixed`. One graph is captured per bucket on first use (at most
``MAX_GRAPHS``, beyond which new buckets run eagerly), into one shared memory pool; each batch's tensors are
copied into the graph's input buffers and its output is copied out right after the replay.

If a capture fails (an older driver, a kernel that cannot be captured), the forward falls back to eager PyTorch
for the rest of the process, with one warning. On a GPU the forward runs under bf16 autocast by default
(``dtype="auto"``); ``dtype="float32"`` turns that off.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from cactus.encoders.config import ATTENTION_MODES, check_mode
from cactus.encoders.packing import SetBatch, pack_fixed
from cactus.inference.streaming_defaults import DTYPES

#: Graphs captured per process at most (each keeps its activations in the shared pool).
MAX_GRAPHS = 32
#: The smallest bucket lengths; buckets grow by powers of two from there.
MIN_ENTITIES, MIN_LENGTH = 2, 8

_CAPTURE_FAILED: set[str] = set()  # device types whose capture raised once: they run eagerly, warned once

Capture = Callable[..., Callable[[], None]]


def resolve_dtype(dtype: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``dtype`` on ``device``, or None for plain float32."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "float32" or (dtype == "auto" and torch.device(device).type != "cuda"):
        return None
    return torch.bfloat16


def capture_graph(step: Callable[[], None], *, warmup: int = 3, pool: Any = None) -> Callable[[], None]:
    """Capture ``step`` (a forward on fixed tensors) in a CUDA graph and return its replay.

    ``step`` runs ``warmup`` times on a side stream first, as ``torch.cuda.graph`` requires, then once under
    capture; the tensors it allocates during the capture are the graph's outputs, rewritten by every replay.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        step()
    return graph.replay


def _power_of_two(n: int, least: int) -> int:
    return max(least, 1 << max(0, int(n) - 1).bit_length())


def bucket_of(token_ids: Sequence[Sequence[int]], max_length: int) -> tuple[int, int]:
    """``(entities, length)`` bucket of one tokenized set: powers of two, the length at most ``max_length``."""
    longest = max(len(e) for e in token_ids)
    return _power_of_two(len(token_ids), MIN_ENTITIES), min(_power_of_two(longest, MIN_LENGTH), max(longest,
                                                                                                   max_length))


def batch_sets(entities: int, length: int, max_batch_tokens: int) -> int:
    """Sets per batch of a bucket: the largest power of two whose padded tokens fit the budget (at least 1)."""
    fit = max(1, max_batch_tokens // (entities * length))
    return 1 << (fit.bit_length() - 1)


class _Graph:
    """One captured forward: static input tensors on the device, the replay, and the static output."""

    def __init__(self, encoder, mode: str, batch: SetBatch, autocast: torch.dtype | None, capture: Capture,
                 pool: Any) -> None:
        self.batch = batch
        self.output: dict[str, torch.Tensor] = {}
        device_type = batch.input_ids.device.type

        def step() -> None:
            # Autocast's weight-cast cache must be off inside a capture.
            with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None,
                                cache_enabled=False):
                self.output["embeddings"] = encoder(self.batch, mode)[0]

        self.replay = capture(step, pool=pool)

    def run(self, batch: SetBatch) -> torch.Tensor:
        """Embeddings (sets, entities, D) of ``batch`` (same bucket, on the CPU), as float32 on the CPU."""
        static = self.batch
        for name in ("input_ids", "position_ids", "token_entity", "entity_lengths", "entity_index", "entity_mask",
                     "set_token_index", "set_token_entity", "token_set_pos"):
            getattr(static, name).copy_(getattr(batch, name), non_blocking=True)
        static.segment_valid[0].copy_(batch.segment_valid[0], non_blocking=True)
        self.replay()
        return self.output["embeddings"].float().cpu()  # copied out before any other graph replays


class EncoderForward:
    """Entity embeddings of tokenized sets, eager or from CUDA graphs (see the module docstring).

    Args:
        encoder: a :class:`~cactus.encoders.SetEncoder`, on its device, in eval mode.
        mode: the attention mode (default the encoder's); graphs need an entity layout (not fia).
        dtype: one of ``DTYPES``.
        graphs: replay CUDA graphs (default: on CUDA with an entity-layout mode).
        capture: the capture function (tests pass others); :func:`capture_graph` by default.
        max_graphs: capture at most this many buckets; later buckets run eagerly.
    """

    def __init__(self, encoder, mode: str | None = None, *, dtype: str = "auto", graphs: bool | None = None,
                 capture: Capture | None = None, max_graphs: int = MAX_GRAPHS) -> None:
        self.encoder = encoder
        self.mode = check_mode(mode or encoder.config.mode)
        self.device = next(encoder.parameters()).device
        self.autocast = resolve_dtype(dtype, self.device)
        entity_layout = ATTENTION_MODES[self.mode].layout == "entity"
        if graphs is None:
            graphs = self.device.type == "cuda" and entity_layout
        self.graphs = graphs and entity_layout and self.device.type not in _CAPTURE_FAILED
        self.capture = capture or capture_graph
        self.max_graphs = max_graphs
        self._graphs: dict[tuple[int, int, int], _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.graphs and self.device.type == "cuda" else None

    def embed(self, token_ids: Sequence[Sequence[Sequence[int]]], max_batch_tokens: int) -> list[np.ndarray]:
        """One float32 (N_i, D) array per tokenized set, in input order."""
        from cactus.inference.streaming import token_batches

        out: list[np.ndarray | None] = [None] * len(token_ids)
        with torch.inference_mode():
            if self.graphs:
                groups: dict[tuple[int, int], list[int]] = {}
                for i, ids in enumerate(token_ids):
                    groups.setdefault(bucket_of(ids, self.encoder.config.max_tokens), []).append(i)
                batches = []
                for (entities, length), members in groups.items():
                    size = batch_sets(entities, length, max_batch_tokens)
                    batches += [((entities, length), members[s:s + size]) for s in range(0, len(members), size)]
                for (entities, length), batch in batches:
                    embeddings = self._bucketed([token_ids[i] for i in batch], entities, length, max_batch_tokens)
                    for row, i in enumerate(batch):
                        out[i] = embeddings[row, : len(token_ids[i])]
            else:
                costs = [sum(len(e) for e in entities) for entities in token_ids]
                for batch in token_batches(costs, max_batch_tokens):
                    embeddings = self._eager(self.encoder.pack_tokens([token_ids[i] for i in batch], self.mode))
                    for row, i in enumerate(batch):
                        out[i] = embeddings[row, : len(token_ids[i])]
        return out  # type: ignore[return-value]

    def _eager(self, batch: SetBatch) -> np.ndarray:
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            embeddings, _ = self.encoder(batch.to(self.device), self.mode)
        return embeddings.float().cpu().numpy()

    def _bucketed(self, ids: list, entities: int, length: int, max_batch_tokens: int) -> np.ndarray:
        """Embeddings of sets of one bucket: the bucket's graph when it has (or may capture) one, else eager."""
        sets = _power_of_two(len(ids), 1)  # a smaller last batch pads to the next power of two only
        batch = pack_fixed(ids, sets=sets, entities=entities, length=length, pad_id=self.encoder.tokenizer.pad_token_id,
                           position_offset=self.encoder.info.position_offset)
        key = (sets, entities, length)
        graph = self._graphs.get(key)
        if graph is None and self.graphs and len(self._graphs) < self.max_graphs:
            try:
                graph = _Graph(self.encoder, self.mode, batch.to(self.device), self.autocast, self.capture, self._pool)
            except Exception as exc:  # any capture failure: eager from now on, said once per device type
                self.graphs = False
                self._graphs.clear()
                if self.device.type not in _CAPTURE_FAILED:
                    _CAPTURE_FAILED.add(self.device.type)
                    warnings.warn(f"cactus: CUDA graph capture failed on {self.device} ({type(exc).__name__}: "
                                  f"{exc}); running the encoder eagerly", RuntimeWarning, stacklevel=4)
                graph = None
            else:
                self._graphs[key] = graph
        if graph is None:
            return self._eager(batch)
        return graph.run(batch).numpy()
