"""Runs independent jobs in this process or in a pool of worker processes.

Pools use the 'forkserver' start method: workers fork from a clean server process, never from
this one, which may already run TensorFlow/JAX threads (forking those can deadlock). Each
process does its numerical work with one BLAS thread: the pool already fills the cores, and
multi-threaded BLAS on small matrices only adds contention (measured 3x slower log-mel).
"""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable, Iterator, Sequence


def _init_worker(initializer: Callable | None, initargs: tuple) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # for the life of the worker process
    if initializer is not None:
        initializer(*initargs)


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
             initializer: Callable | None = None, initargs: tuple = (),
             preload: Sequence[str] = ()) -> Iterator[Any]:
    """Yields `fn(job)` for every job: in order when run here (workers <= 1 or a single job),
    in completion order from `min(workers, len(jobs))` processes otherwise. `initializer` runs
    once per process first; `preload` names modules the fork server imports once for all."""
    if workers <= 1 or len(jobs) <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            if initializer is not None:
                initializer(*initargs)
            for job in jobs:
                yield fn(job)
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker,
                  initargs=(initializer, initargs)) as pool:
        yield from pool.imap_unordered(fn, jobs)
