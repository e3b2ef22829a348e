"""Run independent tasks in this process, in local worker processes, or on a Ray cluster.

The batch commands (`periodize recommend`, `periodize evaluate --workers`, `periodize tune`)
cut their work into tasks that share nothing but what each task names (a model directory, a
cohort file, a shard of athletes) and hand them to `run_tasks`:

- `workers=1` and no Ray address: one after the other in this process (the reference run);
- `workers=K`: a pool of K processes started with `spawn` (a fresh interpreter each: no fork of
  a process that holds torch, JAX or BLAS threads), each running one BLAS/torch thread, since
  the planners are vectorised and K processes on K cores beat K threads in one;
- `ray_address`: one Ray task per task on the cluster at that address (`"local"` starts one in
  this process); Ray is an optional extra (`pip install '.[scale]'`), imported only here.

A task's function must be importable by its module path (a top-level function) and its
argument picklable (plain data, never a loaded model): each worker loads what the task names
once and keeps it (`worker_cache`), so a worker that runs many tasks loads the model once.
Results come back in task order whatever order the workers finish in, so the caller's output
does not depend on the number of workers or on where they ran.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CACHE: dict[Hashable, Any] = {}
_WATCHDOG_S = 1.0  # how often a pool worker checks that its parent is alive


def worker_cache(key: Hashable, build: Callable[[], T]) -> T:
    """`build()` once per process and key (a loaded model, a loaded policy), then reused by
    every task that process runs with the same key."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def _one_thread() -> None:
    """Worker start-up: one BLAS and torch thread (before numpy or torch load, where possible)."""
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    import torch  # a core dependency

    torch.set_num_threads(1)


def _pool_worker_start(parent: int) -> None:
    """A local pool worker's start-up: `_one_thread`, and a watchdog that ends this worker
    when its parent is gone. A parent killed outright (SIGKILL, the OOM killer) cannot stop
    its pool, and a worker in the middle of a task of minutes would otherwise run it to the
    end, holding a core, with nobody to read the result."""
    _one_thread()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True,
                     name="parent-watchdog").start()


def _exit_when_orphaned(parent: int, every_s: float = _WATCHDOG_S) -> None:
    # once the parent is dead this process is re-parented (to init or a subreaper), so its
    # parent id changes (POSIX; on Windows the id stays and the watchdog never fires)
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def check_workers(workers: int, ray_address: str | None = None) -> None:
    """A clear error for a worker count the runner cannot use."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if ray_address is not None and not ray_address.strip():
        raise ValueError("--ray-address is empty (give host:port, 'auto' or 'local')")


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], *, workers: int = 1,
              ray_address: str | None = None, desc: str = "tasks",
              weights: Sequence[int] | None = None, progress: bool = True) -> list[R]:
    """`[fn(t) for t in tasks]`, run as the module docstring says, with a progress bar
    (tqdm, on stderr) that advances by each task's weight (e.g. its athletes). An exception
    in a task ends the run with that exception (tasks that must not stop a batch catch their
    own errors and return them as results)."""
    from tqdm.auto import tqdm

    check_workers(workers, ray_address)
    weights = [1] * len(tasks) if weights is None else list(weights)
    bar = tqdm(total=sum(weights), desc=desc, disable=not progress, unit="",
               dynamic_ncols=True)
    try:
        if ray_address is not None:
            return _run_ray(fn, tasks, ray_address, bar, weights)
        if workers == 1 or len(tasks) <= 1:
            out = []
            for task, w in zip(tasks, weights):
                out.append(fn(task))
                bar.update(w)
            return out
        return _run_pool(fn, tasks, workers, bar, weights)
    finally:
        bar.close()


def _run_pool(fn, tasks, workers, bar, weights) -> list:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[Any] = [None] * len(tasks)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                             initializer=_pool_worker_start,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(weights[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def ray_available() -> bool:
    """Whether the optional Ray extra is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def connect_ray(address: str) -> Any:
    """`ray` connected to the cluster at `address` ('local': a new one in this process), with
    this checkout importable by its workers (the same machine; on other machines install the
    package there). A missing extra is one clear error."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray-address needs Ray: pip install 'adaptive-periodization[scale]'"
                         ) from None
    if not ray.is_initialized():
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = {"PYTHONPATH": path, **{k: "1" for k in _THREAD_VARIABLES}}
        local = {"include_dashboard": False} if address == "local" else {}
        # "local" goes to Ray as it is: a new instance even when a `ray start` cluster runs on
        # this machine (address=None would attach to that one)
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"env_vars": env}, configure_logging=False, **local)
    return ray


def _run_ray(fn, tasks, address, bar, weights) -> list:
    ray = connect_ray(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
    refs = [remote.remote(fn, t) for t in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(tasks)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                results[i] = ray.get(ref)
                bar.update(weights[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results


def _ray_call(fn, task):
    _one_thread()
    return fn(task)
