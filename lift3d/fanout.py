"""Fan independent tasks out: one after another in this process, or one Ray task each (local Ray or a cluster).

Used by the batch scene generator (``lift3d generate messy-rooms-batch``, :mod:`lift3d.generate.batch`) and the
study runner (``tools/study_ray.py``). A task is a module-level function and its arguments; :func:`run_tasks` runs
every task, shows one progress bar over the finished ones and hands each :class:`TaskOutcome` (value or error) to
the caller as it finishes, so a caller records results as they come and an interrupted batch can resume.

Ray is imported only when asked for (:func:`import_ray`); without it the user gets one line naming
``pip install 'lift3d[ray]'``. Local Ray needs no cluster (``ray.init(num_cpus=workers)``, fine on a 2-core
machine); ``address`` joins a running cluster, whose nodes must see the same output folders and import lift3d.

This module is a leaf: it imports nothing from lift3d, so any layer may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exc
from typing import Any, Callable, Optional, Sequence

__all__ = ["RayUnavailableError", "RayOptions", "TaskOutcome", "import_ray", "init_ray", "run_tasks"]

LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024
"""Object store of local Ray: tasks here return small summaries (scenes and runs go to disk), so 100 MiB is plenty
and keeps Ray from reserving a third of the machine's memory."""


class RayUnavailableError(ImportError):
    """``--ray`` was asked for but the ``ray`` package does not import; the message names the extra to install."""


@dataclass
class RayOptions:
    """Where and how the tasks of :func:`run_tasks` run on Ray."""

    address: Optional[str] = None
    """Ray cluster to join (``ray://HOST:10001`` or ``auto``); None starts local Ray in this process."""
    workers: Optional[int] = None
    """CPUs of local Ray, i.e. how many one-CPU tasks run at once (default: every CPU of the machine)."""
    num_cpus_per_task: float = 1.0
    """CPUs Ray reserves for each task."""
    num_gpus_per_task: float = 0.0
    """GPUs asked for by each task, only when the cluster has at least this many (0: never)."""
    python_paths: tuple[str, ...] = ()
    """Folders added to the workers' PYTHONPATH besides the one holding lift3d (e.g. the repository root, so that
    workers import ``tools``)."""


@dataclass
class TaskOutcome:
    """What one task gave: its value, or the error that stopped it."""

    name: str
    """The task's name (a scene's folder name, ``N=25``, ...), used in logs and error reports."""
    value: Any = None
    """The task function's return value (None when it failed)."""
    error: Optional[str] = None
    """``"ExceptionType: message"`` of a failed task; None when it succeeded."""
    traceback: Optional[str] = None
    """The failed task's traceback (from the worker when it ran on Ray), for the record; None when it succeeded."""

    @property
    def ok(self) -> bool:
        """True when the task returned."""
        return self.error is None


def import_ray():
    """``import ray``, or :class:`RayUnavailableError` (one line) naming the extra that installs it."""
    try:
        import ray
    except ImportError as err:
        raise RayUnavailableError(
            f"--ray needs the ray package, which does not import here ({err}): pip install 'lift3d[ray]'"
        ) from None
    return ray


def _lift3d_root() -> str:
    """The folder that holds the ``lift3d`` package (a source checkout's root, or site-packages)."""
    return str(Path(__file__).resolve().parents[1])


def init_ray(address: Optional[str] = None, workers: Optional[int] = None, python_paths: Sequence[str] = ()):
    """Start local Ray with ``workers`` CPUs (default: all) or join the cluster at ``address``; returns ``ray``.

    Workers get a PYTHONPATH holding lift3d's folder, ``python_paths`` and the driver's own PYTHONPATH, so a task
    function defined in lift3d (or in a folder named there) imports by name. An already initialised Ray is reused.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    paths = [_lift3d_root(), *python_paths, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:
        ray.init(
            num_cpus=workers or os.cpu_count(),
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            runtime_env=env,
            log_to_driver=True,
        )
    return ray


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def run_tasks(
    function: Callable[..., Any],
    tasks: Sequence[tuple[str, tuple]],
    ray_options: Optional[RayOptions] = None,
    on_done: Optional[Callable[[TaskOutcome], None]] = None,
    stop_on_error: bool = False,
    desc: str = "tasks",
    unit: str = "task",
) -> list[TaskOutcome]:
    """Run ``function(*args)`` for every ``(name, args)`` of ``tasks``; return the outcomes in the order of ``tasks``.

    Serially in this process when ``ray_options`` is None, else one Ray task each (:func:`init_ray`; ``function``
    must be a module-level function so that workers import it by name). ``on_done`` receives each outcome as its
    task finishes, in the driver. A task that raises gives an outcome with ``error`` set and the others go on;
    with ``stop_on_error`` its exception is raised instead (on Ray: Ray's ``RayTaskError``, which is also an
    instance of the task's exception type and carries the worker's traceback) and tasks not yet finished are
    cancelled. One tqdm bar counts finished tasks. No task: nothing is started (not even Ray).
    """
    from tqdm import tqdm

    names = [name for name, _ in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    if not tasks:
        return []  # nothing to run: Ray is not started
    outcomes: dict[str, TaskOutcome] = {}

    def finish(outcome: TaskOutcome, bar) -> None:
        outcomes[outcome.name] = outcome
        bar.update(1)
        if on_done is not None:
            on_done(outcome)

    with tqdm(total=len(tasks), desc=desc, unit=unit) as bar:
        if ray_options is None:
            for name, args in tasks:
                try:
                    value = function(*args)
                except Exception as err:
                    if stop_on_error:
                        raise
                    finish(TaskOutcome(name, error=_describe(err), traceback=format_exc()), bar)
                else:
                    finish(TaskOutcome(name, value), bar)
        else:
            _run_on_ray(function, tasks, ray_options, stop_on_error, lambda o: finish(o, bar))
    return [outcomes[name] for name in names]


def _run_on_ray(function, tasks, options: RayOptions, stop_on_error: bool, finish) -> None:
    ray = init_ray(options.address, options.workers, options.python_paths)
    gpus = ray.cluster_resources().get("GPU", 0)
    num_gpus = options.num_gpus_per_task if 0 < options.num_gpus_per_task <= gpus else 0
    remote = ray.remote(function).options(num_cpus=options.num_cpus_per_task, num_gpus=num_gpus, max_retries=0)
    pending = {remote.remote(*args): name for name, args in tasks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(ready[0])
        try:
            value = ray.get(ready[0])
        except Exception as err:  # a RayTaskError: also an instance of the task's exception type
            if stop_on_error:
                for ref in pending:
                    ray.cancel(ref)
                raise
            cause = getattr(err, "cause", None) or err
            finish(TaskOutcome(name, error=_describe(cause), traceback=str(err)))
        else:
            finish(TaskOutcome(name, value))
