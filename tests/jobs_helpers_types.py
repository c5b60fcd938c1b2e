"""A job type plugin for the worker tests, loaded the way users load theirs: ``CACTUS_JOB_TYPES=<this module>``.

``test.steps`` counts through ``steps`` steps, sleeping ``delay`` seconds in each, printing a line and
reporting progress. Each finished step appends the attempt that ran it to a file ``step-<i>`` in the job's
work folder, inside a store session of the job (fenced by its lease: refused once another worker took the
job over), so a file with two lines is a step that ran twice. A run skips the steps already there, so a job
run again after its worker died resumes where it stopped (the result says from which step). ``fail_at``
makes it raise at that step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.base import JobContext, JobParamsError, JobType


@dataclass(frozen=True)
class StepsParams:
    steps: int
    delay: float = 0.0
    fail_at: int | None = None


def parse_steps(raw: Mapping[str, Any]) -> StepsParams:
    steps = raw.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
        raise JobParamsError(f"test.steps: steps must be an integer from 1 to 10000, got {steps!r}")
    delay = raw.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 10:
        raise JobParamsError(f"test.steps: delay must be 0 to 10 seconds, got {delay!r}")
    fail_at = raw.get("fail_at")
    if fail_at is not None and (isinstance(fail_at, bool) or not isinstance(fail_at, int)):
        raise JobParamsError(f"test.steps: fail_at must be a step number, got {fail_at!r}")
    return StepsParams(steps, float(delay), fail_at)


def run_steps(ctx: JobContext, params: StepsParams) -> dict[str, Any]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    done = [i for i in range(params.steps) if (ctx.work_dir / f"step-{i}").exists()]
    for i in range(params.steps):
        if (ctx.work_dir / f"step-{i}").exists():
            continue
        if params.fail_at == i:
            raise ValueError(f"asked to fail at step {i}")
        time.sleep(params.delay)
        with ctx.session(), (ctx.work_dir / f"step-{i}").open("a") as record:  # only while the lease holds
            record.write(f"{ctx.attempt}\n")
        print(f"step {i} done (attempt {ctx.attempt})", flush=True)
        ctx.progress((i + 1) / params.steps, f"step {i + 1}/{params.steps}")
        ctx.metrics(steps_done=i + 1)
        ctx.point(step=i + 1, loss=1.0 / (i + 1))
    return {"steps": params.steps, "resumed_from": len(done), "attempt": ctx.attempt}


JOB_TYPES = [JobType(name="test.steps", summary="count through steps (worker tests)", run=run_steps,
                     parse_params=parse_steps)]
