#!/usr/bin/env python
"""Start-up and per-task overhead of a local Dask or Ray cluster (for docs/distributed.md).

    python scripts/bench_engines.py dask     # needs stemcut[dask]
    python scripts/bench_engines.py ray      # needs ray (not a stemcut dependency)

Starts 2 single-threaded worker processes, runs 200 trivial tasks, prints both times.
"""

from __future__ import annotations

import argparse
import time


def square(value: int) -> int:
    return value * value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=["dask", "ray"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.engine == "dask":
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        up = time.perf_counter()
        client.gather([client.submit(square, i, pure=False) for i in range(args.tasks)])
        done = time.perf_counter()
        client.close()
        cluster.close()
    else:
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        up = time.perf_counter()
        remote = ray.remote(square)
        ray.get([remote.remote(i) for i in range(args.tasks)])
        done = time.perf_counter()
        ray.shutdown()
    print(f"{args.engine}: cluster up {up - started:.2f} s, {args.tasks} tiny tasks {done - up:.2f} s "
          f"({(done - up) / args.tasks * 1000:.1f} ms/task)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
