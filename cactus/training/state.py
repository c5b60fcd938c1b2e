"""Saving and restoring everything needed to resume training: weights, optimizer, RNGs, progress.

Weights go to ``module.safetensors``, optimizer and RNG tensors to ``state.safetensors`` (never pickle), the
rest to ``state.json``. The folder is written
to a staging folder and renamed into place, so an interruption leaves the previous state intact.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

STATE_DIR = "training_state"


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into named tensors and a JSON-able remainder."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
                      ) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_states() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    python_state = random.getstate()
    return tensors, {"python": [python_state[0], list(python_state[1]), python_state[2]],
                     "numpy": np.random.get_state(legacy=False)}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(meta["numpy"])


def save_training_state(out_dir: Path, module: nn.Module, optimizer: torch.optim.Optimizer, progress: dict[str, Any]
                        ) -> None:
    """Write ``out_dir/training_state`` atomically: module weights, optimizer, RNGs and ``progress``."""
    optim_tensors, optim_meta = flatten_optimizer(optimizer)
    rng_tensors, rng_meta = rng_states()
    staging = Path(tempfile.mkdtemp(prefix=f".{STATE_DIR}.", dir=out_dir))
    try:
        save_model(module, str(staging / "module.safetensors"))  # handles tied weights (T5's shared embeddings)
        save_file({**optim_tensors, **rng_tensors}, str(staging / "state.safetensors"))
        meta = {"progress": progress, "optimizer": optim_meta, "rng": rng_meta}
        (staging / "state.json").write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
        target = out_dir / STATE_DIR
        old = out_dir / f".{STATE_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_training_state(out_dir: Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote and return its ``progress``."""
    folder = out_dir / STATE_DIR
    tensors = load_file(str(folder / "state.safetensors"))
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    missing, unexpected = load_model(module, str(folder / "module.safetensors"), device="cpu")
    if missing or unexpected:
        raise RuntimeError(f"training state does not fit the model: missing {missing}, unexpected {unexpected}")
    restore_optimizer(optimizer, tensors, meta["optimizer"])
    restore_rng(tensors, meta["rng"])
    return meta["progress"]


def read_progress(out_dir: Path) -> dict[str, Any] | None:
    """The saved progress of an interrupted run in ``out_dir``, or None when there is none."""
    path = out_dir / STATE_DIR / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["progress"]


def clear_training_state(out_dir: Path) -> None:
    shutil.rmtree(out_dir / STATE_DIR, ignore_errors=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"cannot store {type(value).__name__} in the training state")
