"""Background jobs: a queue in the store and ``cactus worker`` processes that run them.

- :mod:`jobs.queue`: enqueue, get, list, cancel and retry jobs (what the app calls).
- :mod:`jobs.worker`: the worker loop; :mod:`jobs.claims`: its atomic claims, heartbeats and recovery;
  :mod:`jobs.process` and :mod:`jobs.child`: each job in a child process of its own.
- :mod:`jobs.types`: the registry of job types (one module each, plus ``CACTUS_JOB_TYPES`` plugins);
  :mod:`jobs.base`: :class:`~jobs.base.JobType` and the :class:`~jobs.base.JobContext` a job runs with.
"""
