"""``make bench``: every benchmark in turn (each writes its table to ``bench/results/``)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "bench_peers",
    "bench_serving",
    "bench_floor",
    "bench_directory",
    "bench_authz",
    "bench_analytics",
    "bench_dashboard_goals",
    "bench_partner_scale",
    "bench_ingest",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
