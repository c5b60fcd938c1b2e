"""The registry of job types: every module of this package, plus plugins named in ``CACTUS_JOB_TYPES``.

A job type is one module that defines ``JOB_TYPE = JobType(name=..., summary=..., parse_params=...,
run=...)`` (see :mod:`jobs.base`). Adding one to cactus is adding a module here: the registry finds it.
Keep the module's top level light (no torch import): the queue imports it to check parameters.

Plugins: ``CACTUS_JOB_TYPES=pkg.module[,other.module]`` names more modules, each defining ``JOB_TYPE``
or ``JOB_TYPES`` (a list). The worker and ``jobs.queue.enqueue`` both load them, so set the variable
for the app and for the worker alike. Plugins cannot replace a built-in type's name.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from types import ModuleType
from typing import Any

from jobs.base import JobParamsError, JobType

PLUGINS_ENV = "CACTUS_JOB_TYPES"

_cache: dict[str, dict[str, JobType[Any]]] = {}
_lock = threading.Lock()


def _types_of(module: ModuleType) -> list[JobType[Any]]:
    found = getattr(module, "JOB_TYPES", None)
    if found is None:
        single = getattr(module, "JOB_TYPE", None)
        found = [single] if single is not None else []
    bad = [t for t in found if not isinstance(t, JobType)]
    if bad or not found:
        raise JobParamsError(f"module {module.__name__} must define JOB_TYPE (a jobs.base.JobType) or JOB_TYPES "
                             "(a list of them)")
    return list(found)


def _load(plugins: str) -> dict[str, JobType[Any]]:
    registry: dict[str, JobType[Any]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        for job_type in _types_of(importlib.import_module(f"{__name__}.{info.name}")):
            registry[job_type.name] = job_type
    for name in (p.strip() for p in plugins.split(",")):
        if not name:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise JobParamsError(f"cannot import job type plugin {name!r} named in {PLUGINS_ENV} ({exc}); "
                                 "fix the module path or unset the variable") from None
        for job_type in _types_of(module):
            if job_type.name in registry and registry[job_type.name] is not job_type:
                raise JobParamsError(f"plugin {name} defines job type {job_type.name!r}, which exists already")
            registry[job_type.name] = job_type
    return registry


def job_types() -> dict[str, JobType[Any]]:
    """Every known job type by name (built-ins, then the plugins of ``CACTUS_JOB_TYPES``)."""
    plugins = os.environ.get(PLUGINS_ENV, "")
    with _lock:
        if plugins not in _cache:
            _cache[plugins] = _load(plugins)
        return _cache[plugins]


def get_job_type(name: str) -> JobType[Any]:
    """The job type called ``name``.

    Raises:
        JobParamsError: no such type (the message lists the known ones).
    """
    registry = job_types()
    if name not in registry:
        raise JobParamsError(f"unknown job type {name!r}; known: {', '.join(sorted(registry)) or 'none'} "
                             f"(plugins are loaded from {PLUGINS_ENV})")
    return registry[name]
