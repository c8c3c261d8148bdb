"""Benchmark the retrospective audit (issue 15): visits/s per core, peak memory, ratio to a read-and-join baseline.

For each size (default 10,000 and 100,000 visits) a synthetic export is written first (``audit.synthetic``,
not timed), then each configuration runs in a fresh child process, one after another, on the same export:

  baseline   read + join only: parse every NDJSON line, spill to SQLite, join, assemble each visit (1 process)
  local-1    the local engine, 1 process          local-2   the local engine, 2 worker processes
  spark-2    the spark engine, local[2] (JVM start-up included, as a user sees it)

Printed per run: wall seconds, visits/s, visits/s per core, CPU seconds of the child's whole process tree
(user + system, JVM and workers included) and visits per CPU-second (the figure that least depends on what
else the machine is running), peak memory (summed RSS of the tree, sampled every 0.2 s) and the ratio of
its time to the baseline's.
Results are also appended as JSON lines to ``--results`` so a long run can be read while it goes on.

    .venv/bin/python benchmarks/bench_audit.py [--sizes 10000,100000] [--configs baseline,local-1,local-2,spark-2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORES = {"baseline": 1, "local-1": 1, "local-2": 2, "spark-2": 2}
CHILD = r"""
import json, sys, time
from audit.run import run_audit
manifest, out, config = sys.argv[1:4]
kw = dict(progress=False, report=True)
if config == "baseline":
    kw.update(processes=1, join_only=True, report=False)
elif config.startswith("local-"):
    kw.update(processes=int(config.split("-")[1]))
else:
    from audit.spark_engine import build_session
    kw.update(engine="spark", spark_session=build_session("local[2]", partitions=16))
t = time.perf_counter()
result = run_audit([manifest], out, **kw)
seconds = time.perf_counter() - t
if config.startswith("spark"):
    kw["spark_session"].stop()
print(json.dumps({"seconds": seconds, "visits": result.stats.get("visits") if config == "baseline" else result.summary.visits,
                  "lines": result.summary.lines, "stats": {k: v for k, v in result.stats.items() if isinstance(v, (int, float))}}))
"""


def _tree(pid: int) -> dict[int, tuple[int, float]]:
    """(RSS bytes, user+system CPU seconds) of ``pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            stats[int(entry)] = (int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            continue
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            out[p] = stats[p]
        todo += children.get(p, [])
    return out


def run_config(manifest: Path, out: Path, config: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(manifest), str(out), config], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            tree = _tree(proc.pid)
            peak = max(peak, sum(rss for rss, _ in tree.values()))
            for p, (_, seconds) in tree.items():
                cpu[p] = max(cpu.get(p, 0.0), seconds)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = round(peak / 1e6, 1)
    result["cpu_seconds"] = round(sum(cpu.values()), 1)  # whole run incl. start-up; exits between samples lose <0.2 s each
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--configs", default="baseline,local-1,local-2,spark-2")
    parser.add_argument("--workdir", default=None, help="where exports and outputs go (default a temporary folder)")
    parser.add_argument("--results", default=str(ROOT / "test-artifacts" / "bench_audit.jsonl"))
    args = parser.parse_args()
    from audit.synthetic import write_export

    configs = args.configs.split(",")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-audit-"))
    print(f"bench_audit: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; work in {work}", flush=True)
    print(f"{'visits':>8} {'config':<9} {'seconds':>9} {'visits/s':>9} {'per core':>9} {'CPU s':>8} {'visits/CPU-s':>12} "
          f"{'peak MB':>8} {'x baseline':>10}", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        export = work / f"export-{size}"
        t = time.perf_counter()
        info = write_export(export, size, compress=True)
        size_mb = sum(p.stat().st_size for p in info.files) / 1e6
        print(f"# export of {size:,} visits: {size_mb:.0f} MB gzip NDJSON in {len(info.files)} files, "
              f"written in {time.perf_counter() - t:.0f} s", flush=True)
        baseline = None
        for config in configs:
            load = os.getloadavg()[0]
            got = run_config(info.manifest, work / f"out-{size}-{config}", config)
            seconds = got["seconds"]
            baseline = seconds if config == "baseline" else baseline
            rate = size / seconds
            ratio = f"{seconds / baseline:.1f}x" if baseline else "-"
            print(f"{size:>8} {config:<9} {seconds:>9.1f} {rate:>9.1f} {rate / CORES[config]:>9.1f} {got['cpu_seconds']:>8.0f} "
                  f"{size / max(got['cpu_seconds'], 0.1):>12.1f} {got['peak_mb']:>8.0f} {ratio:>10}"
                  f"   (load before {load:.1f})", flush=True)
            with results.open("a") as handle:
                handle.write(json.dumps({"visits": size, "config": config, "cores": CORES[config], "load_before": load,
                                         "ratio_to_baseline": seconds / baseline if baseline else None, **got}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
