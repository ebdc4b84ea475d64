"""``python -m nas.bench NAME [--full] [--cuda]``; also the fresh-process worker of the latency
benchmark (``python -m nas.bench _latency_worker ARGS``)."""

from __future__ import annotations

import json
import logging
import sys

from nas.bench.latency import latency_worker
from nas.bench.registry import BENCHES, format_result, run_bench
from nas.device import tune_host_allocator


def main(argv: list[str]) -> int:
    tune_host_allocator()
    if len(argv) == 2 and argv[0] == "_latency_worker":
        print(json.dumps(latency_worker(json.loads(argv[1]))))
        return 0
    if not argv:
        print(f"usage: python -m nas.bench NAME [--full] [--cuda]; NAME in {sorted(BENCHES)}")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = "cuda" if "--cuda" in argv else "cpu"
    result = run_bench(argv[0], quick="--full" not in argv, device=device)
    print("\n".join(format_result(argv[0], result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
