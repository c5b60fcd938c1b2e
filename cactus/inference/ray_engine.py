"""``cactus predict --engine ray``: streaming prediction on Ray Data, on one machine or a cluster.

Ray Data reads the sets (JSONL lines or Parquet rows of a file, a folder of shards or a glob), hands blocks of
``window`` sets to an actor pool in which every actor holds one model (one GPU per actor where the cluster has
GPUs, a fraction of a CPU otherwise: whole-CPU actors starve Ray's read tasks on small machines), and each actor
runs :func:`~cactus.inference.streaming.predict_stream` on its block. Blocks keep the input order
(``preserve_order``), so one output file is the same, byte for byte, as ``--engine local`` writes; a folder output
gets one shard per block, written by the workers, in the chosen format.

``RAY_ADDRESS`` (or ``address``) joins a running cluster; otherwise a local Ray starts and stops with the run. An
already initialised Ray (a notebook, the tests) is used as it is. The model folder and the input must be readable
at the same path on every node (a shared file system).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cactus.data.errors import DataError
from cactus.data.hygiene import load_json
from cactus.data.set_files import FORMATS, _from_parquet_row, file_format, parquet_row, parquet_schema
from cactus.data.sets import parse_entity_set
from cactus.errors import CactusError

INSTALL_HINT = ("--engine ray needs Ray Data: pip install 'cactus-workbench[ray]' (or pip install "
                "'ray[data]==2.60.0')")
CPU_ACTOR_SHARE = 0.5  # CPUs asked per CPU actor (see the module docstring)


@dataclass(frozen=True)
class RayRun:
    """One ``--engine ray`` run: the model, the input and output, the prediction options and the pool."""

    model: Path
    sets: str
    out: Path
    threshold: float
    cut: str = "threshold"
    mode: str | None = None
    with_similarity: bool = False
    max_batch_tokens: int = 8192
    dtype: str = "auto"
    skip_invalid: bool = False
    address: str | None = None
    actors: int | None = None
    shard_format: str | None = None
    window: int = 256

    def options(self):
        """The :class:`~cactus.inference.streaming.StreamOptions` each actor runs with."""
        from cactus.inference.streaming import StreamOptions

        return StreamOptions(threshold=self.threshold, cut=self.cut, mode=self.mode,
                             with_similarity=self.with_similarity, max_batch_tokens=self.max_batch_tokens,
                             window=self.window, dtype=self.dtype)


def load_ray():
    """The ``ray`` module with Ray Data, or a CactusError that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise CactusError(INSTALL_HINT) from None
    return ray


def input_files(spec: str) -> tuple[list[str], str]:
    """The files of ``spec`` (a file, a folder of shards, or a glob) in name order, and their one format."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
    elif path.is_file():
        files = [path]
    elif glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    else:
        raise CactusError(f"{spec}: no such file, folder or glob")
    if not files:
        raise CactusError(f"{spec}: no .jsonl or .parquet files")
    formats = {file_format(f) for f in files}
    if len(formats) > 1:
        raise CactusError(f"{spec}: mixes JSONL and Parquet files; give one format")
    return [str(f.resolve()) for f in files], formats.pop()


def output_kind(out: Path, input_format: str, shard_format: str | None) -> tuple[str, str]:
    """``("file" | "shards", format)``: a .jsonl/.parquet path is one file, any other path a folder of shards."""
    if out.suffix.lower() in FORMATS:
        if shard_format is not None:
            raise CactusError("--shard-format goes with a folder output (an --out without .jsonl or .parquet)")
        return "file", file_format(out)
    if out.exists() and not out.is_dir():
        raise CactusError(f"{out}: exists and is not a folder; name a .jsonl/.parquet file or a folder of shards")
    if out.is_dir() and any(out.iterdir()):
        raise CactusError(f"{out}: the shards folder is not empty; choose a new folder")
    return "shards", shard_format or input_format


class SetPredictor:
    """A Ray actor: one model, and a block of input records in, a block of clustered output records out."""

    def __init__(self, run: RayRun, input_format: str, output_format: str, threads: int) -> None:
        import torch

        from cactus.inference.model import ClusteringModel
        from cactus.inference.streaming import predict_stream

        if threads:
            torch.set_num_threads(threads)
        self.run, self.input_format, self.output_format = run, input_format, output_format
        self.options = run.options()
        self.model = ClusteringModel.load(run.model)
        self._predict_stream = predict_stream

    def __call__(self, block):
        """``block``: a pyarrow table of JSONL lines (``text``) or Parquet set rows; returns the output's table."""
        import pyarrow as pa

        out: list = []
        self._predict_stream(self.model.encoder, self._sets(block.to_pylist()), out.append, self.options)
        if self.output_format == "jsonl":
            return pa.table({"line": pa.array([json.dumps(s.to_json(), ensure_ascii=False) for s in out],
                                              pa.string())})
        return pa.Table.from_pylist([parquet_row(s) for s in out], schema=parquet_schema())

    def _sets(self, rows: list[dict[str, Any]]):
        for row in rows:
            path = row.pop("path", None)  # the file the record came from (include_paths)
            try:
                if self.input_format == "jsonl":
                    text = row["text"].removeprefix("\ufeff")
                    if not text.strip():
                        continue  # blank lines are skipped, as the local reader does
                    obj = load_json(text)
                else:
                    obj = _from_parquet_row(row)
                yield parse_entity_set(obj)
            except DataError as exc:
                located = exc.located(path=path)
                if not self.run.skip_invalid:
                    raise located from None
                print(f"skipped an invalid set: {located}")


def _pool(ray, actors: int | None) -> tuple[int, dict[str, float], int]:
    """Actors, the resources each asks for, and torch threads per actor, from the cluster's resources."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus:
        return actors or gpus, {"num_gpus": 1}, 0
    return actors or max(1, int(cpus // 2)), {"num_cpus": CPU_ACTOR_SHARE}, 1


def predict_ray(run: RayRun) -> int:
    """Cluster every set of ``run.sets`` on Ray and write ``run.out``; returns the number of sets written."""
    from cactus.data.partial_output import PartialOutput
    from cactus.encoders.config import check_mode

    try:
        run.options()
        if run.mode is not None:
            check_mode(run.mode)
    except ValueError as exc:
        raise CactusError(str(exc)) from None
    files, input_format = input_files(run.sets)
    if any(Path(f) == run.out.resolve() for f in files):
        raise CactusError("--out must differ from the input files (the input is never overwritten)")
    kind, output_format = output_kind(run.out, input_format, run.shard_format)
    ray = load_ray()
    started = not ray.is_initialized()
    if started:
        address = run.address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(address=address, **({} if address else {"include_dashboard": False}))
        except (ConnectionError, ValueError) as exc:
            raise CactusError(f"could not {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                              f"{exc}") from None
    try:
        actors, resources, threads = _pool(ray, run.actors)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        # Ray lists the input files from several threads, which import this module at once on a first run; without
        # aiohttp (a dependency of the ray extra) its import fails and another thread can find it half-imported,
        # an ImportError Ray does not catch. Import it here first, once.
        with contextlib.suppress(ImportError):
            import fsspec.implementations.http  # noqa: F401
        if input_format == "jsonl":
            data = ray.data.read_text(files, drop_empty_lines=True, include_paths=True)
        else:
            data = ray.data.read_parquet(files, include_paths=True)
        predicted = data.map_batches(
            SetPredictor, fn_constructor_args=(run, input_format, output_format, threads), batch_size=run.window,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors), **resources,
        )
        try:
            if kind == "shards":
                return _write_shards(ray, predicted, run.out, output_format)
            output = PartialOutput(run.out)
            try:
                for block in predicted.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for record in block.to_pylist():
                        output.write_record(record["line"] if output_format == "jsonl" else record)
                    output.flush()
            except BaseException:
                output.abandon()
                raise
            return output.finish()
        except Exception as exc:
            raise _user_error(exc) from None
    finally:
        if started:
            ray.shutdown()


def _write_shards(ray, predicted, out: Path, output_format: str) -> int:
    """Each block as one shard file of ``out`` (written by the workers); returns the number of sets."""
    out.mkdir(parents=True, exist_ok=True)
    if output_format == "parquet":
        predicted.write_parquet(str(out))
    else:
        predicted.write_datasink(_lines_datasink(str(out)))
    from cactus.data.set_files import count_records

    total = sum(count_records(shard) for shard in out.glob(f"*.{output_format}"))
    if total == 0:
        raise CactusError("no valid sets to write: the input is empty or every set was invalid")
    return total


def _lines_datasink(path: str):
    """A Ray datasink writing each block's ``line`` column as one JSONL shard."""
    from ray.data.datasource import BlockBasedFileDatasink

    class LinesDatasink(BlockBasedFileDatasink):
        def write_block_to_file(self, block, file) -> None:
            for line in block.to_arrow().column("line").to_pylist():
                file.write((line + "\n").encode("utf-8"))

    return LinesDatasink(path, file_format="jsonl")


def _user_error(exc: BaseException) -> BaseException:
    """A CactusError with the message of the cactus error (a bad set, say) that failed an actor, else ``exc``.

    Ray hands the driver the actor's traceback as text (``RayTaskError``), not the exception object.
    """
    if isinstance(exc, CactusError):
        return exc
    found = re.findall(r"^cactus\.[\w.]*(?:Error|Exception): (.+)$", str(exc), flags=re.MULTILINE)
    return CactusError(found[-1]) if found else exc
