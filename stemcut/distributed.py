"""One music library over a Dask cluster: one task per track, models loaded once per worker.

``stemcut separate --dask ADDRESS`` (or :func:`run_on_dask`) plans the batch as usual,
submits one task per track to the cluster and gathers the outcomes into the usual
result and JSON report. Each task runs the same per-track code as a local run
(:func:`stemcut.batch.run_track`: resume check, claim, separate, record), so tasks,
local runs and other workers can share one output folder; every worker process keeps
one :class:`stemcut.separator.Separator` per model set and settings, so models load
once per worker. ``local:N`` starts a LocalCluster of N single-threaded worker
processes on this machine. For GPUs start one worker per GPU (``dask-cuda``'s
``LocalCUDACluster``, or ``CUDA_VISIBLE_DEVICES=i dask worker ...`` per GPU): each
worker's separator then runs on its own GPU. Dask is an optional extra
(``pip install 'stemcut[dask]'``); see docs/distributed.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .batch import BatchResult, Job, Outcome, Spec, fingerprint_settings, run_track
from .settings import SeparationSettings

_SEPARATORS: dict = {}  # per worker process: (model folder, settings) -> Separator


def _worker_separator(model_dir: str | None, settings: SeparationSettings):
    from .separator import Separator

    key = (model_dir, settings)
    if key not in _SEPARATORS:
        _SEPARATORS[key] = Separator(model_dir, settings)
    return _SEPARATORS[key]


def separate_track(job: Job, spec: Spec, model_dir: str | None, settings: SeparationSettings, fingerprint: dict,
                   force: bool) -> Outcome:
    """The task: one track on a worker, with that worker's cached separator."""
    return run_track(_worker_separator(model_dir, settings), job, spec, fingerprint, force)


def connect(address: str):
    """A Dask client: ``local:N`` (N local worker processes, one thread each), ``local``
    (one per core), or a scheduler address such as ``tcp://host:8786``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--dask needs Dask: pip install 'stemcut[dask]'") from None
    if address == "local" or address.startswith("local:"):
        count = int(address.partition(":")[2] or os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster)
    return Client(address)


def run_on_dask(address_or_client, jobs: list[Job], spec: Spec, *, model_dir: os.PathLike | str | None,
                settings: SeparationSettings, stems: list[str], force: bool = False,
                on_done: Callable[[Outcome], None] | None = None) -> BatchResult:
    """Separate ``jobs`` on a Dask cluster; outcomes in plan order, as :func:`stemcut.batch.run_jobs` gives."""
    from dask.distributed import as_completed

    from .weights import default_model_dir, model_specs

    folder = str(Path(model_dir) if model_dir is not None else default_model_dir())
    # The manifest's checksums (each worker checks the files against them when it loads the models).
    fingerprint = fingerprint_settings({s.target: s.sha256 for s in model_specs(folder)}, settings, spec, stems)
    own_client = isinstance(address_or_client, str)
    client = connect(address_or_client) if own_client else address_or_client
    futures = {client.submit(separate_track, job, spec, folder, settings, fingerprint, force, pure=False): index
               for index, job in enumerate(jobs)}
    outcomes: dict[int, Outcome] = {}
    interrupted = False
    try:
        for future in as_completed(futures):
            index = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # the worker died, or the task could not run there
                outcome = Outcome(jobs[index].input, "failed", f"worker failed: {type(error).__name__}: {error}"
                                  .splitlines()[0])
            outcomes[index] = outcome
            if on_done is not None:
                on_done(outcome)
    except KeyboardInterrupt:
        interrupted = True
        client.cancel(list(futures))
    finally:
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    ordered = [outcomes.get(i) or Outcome(job.input, "not_run", "interrupted") for i, job in enumerate(jobs)]
    return BatchResult(ordered, interrupted, fingerprint)
