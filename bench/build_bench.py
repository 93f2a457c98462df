"""Default-world build-data: this tree against a baseline tree, in the same run.

Builds the same simulate-logs directory with both trees' ``adpush build-data --source world``
(each under ``/usr/bin/time -v``), then prints wall time, CPU seconds (user + sys) and peak RSS
of each, their ratios (this tree / baseline) and each figure against issue 18's limits
(<= 180 s wall on a quiet machine, <= 2 GB peak memory: the PSS of the whole process tree, sampled every 0.2 s, since multi_processing runs worker processes), and checks that every output file is
byte-identical (sha256 per relative path; a missing or extra file is a difference).

    adpush simulate-logs --out /tmp/dw/logs --seed 0                     # the default world
    python bench/build_bench.py --logs /tmp/dw/logs --work /tmp/dw \\
        --baseline_adpush /work/main/.venv/bin/adpush                      # main beside this tree
    python bench/build_bench.py --logs /tmp/dw/logs --work /tmp/dw --reuse_baseline   # baseline built before
    python bench/build_bench.py --logs /tmp/dw/logs --work /tmp/dw --repeats 3        # medians of 3 pairs

The machine may be shared: the wall limit is for a quiet machine, so compare CPU seconds and
the ratios, measured here under the load average printed beside them. ``--parallel`` runs both
builds at once (the same conditions for both, each slower). ``--repeats N`` builds N pairs
(baseline, then this tree) and prints each figure's median; every pair's files are compared.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

WALL_LIMIT_S = 180.0          # issue 18: <= 3 min on a quiet machine
RSS_LIMIT_BYTES = 2 << 30     # issue 18: <= 2 GB peak


def _time_v(text: str) -> dict:
    def field(name):
        m = re.search(rf"{re.escape(name)}: (.+)", text)
        return m.group(1).strip() if m else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    seconds = 0.0
    if wall:
        for part in wall.split(":"):
            seconds = seconds * 60 + float(part)
    return {"wall_s": seconds, "user_s": float(field("User time (seconds)") or "nan"),
            "sys_s": float(field("System time (seconds)") or "nan"),
            "largest_process_rss_bytes": int(field("Maximum resident set size (kbytes)") or 0) * 1024,
            "exit": int(field("Exit status") or -1)}


def _pss_bytes(pid: int) -> int:
    """Proportional set size: resident bytes with pages shared between processes (libraries,
    copy-on-write after fork) divided among them, so a tree's sum counts each page once."""
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_pss_bytes(root: int) -> int:
    """Memory of ``root`` and all its descendants now, as the sum of their PSS (Beam's
    multi_processing workers are child processes: /usr/bin/time's maximum RSS is the largest
    single process, not their sum)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += _pss_bytes(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
        todo.extend(children.get(pid, ()))
    return total


class _TreePss(threading.Thread):
    """Samples ``tree_pss_bytes(pid)`` every ``interval`` seconds; ``peak`` is the largest."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.done = pid, interval, 0, threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, tree_pss_bytes(self.pid))


def _start(adpush: str, logs: str, out: Path, log: Path, extra=()):
    if out.exists():
        shutil.rmtree(out)
    cmd = ["/usr/bin/time", "-v", adpush, "build-data", "--source", "world", "--input", logs, "--out", str(out),
           *extra]
    fh = open(log, "w")
    # Run from the work directory, not a checkout: Beam's worker processes start as `python -m`,
    # which puts the current directory first on sys.path, so a build started from one tree
    # would run the other tree's beam_pipelines in its workers.
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
    sampler = _TreePss(proc.pid)
    sampler.start()
    return proc, fh, os.getloadavg()[0], sampler


def _finish(job, log: Path) -> dict:
    proc, fh, load_start, sampler = job
    proc.wait()
    sampler.done.set()
    sampler.join()
    fh.close()
    figures = _time_v(log.read_text(errors="replace"))
    # the peak PSS of the whole process tree (sampled), or the largest process if it was larger
    figures["peak_memory_bytes"] = max(sampler.peak, figures["largest_process_rss_bytes"])
    figures["loadavg_start"], figures["loadavg_end"] = load_start, os.getloadavg()[0]
    if figures["exit"] != 0:
        raise SystemExit(f"build failed, see {log}")
    figures["cpu_s"] = figures["user_s"] + figures["sys_s"]
    return figures


def digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _medians(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", required=True, help="a simulate-logs directory (the default world)")
    parser.add_argument("--work", required=True, help="directory for both builds' outputs and logs")
    parser.add_argument("--adpush", default=str(Path(sys.executable).with_name("adpush")),
                        help="this tree's adpush (default: beside this Python)")
    parser.add_argument("--baseline_adpush", default="/work/main/.venv/bin/adpush")
    parser.add_argument("--reuse_baseline", action="store_true",
                        help="use WORK/baseline and WORK/baseline.time from an earlier run")
    parser.add_argument("--parallel", action="store_true", help="run both builds at once")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of builds; figures are medians")
    parser.add_argument("--json", default=None)
    args, extra = parser.parse_known_args(argv)   # the rest: build-data options for this tree's build

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base_out, base_log = work / "baseline", work / "baseline.time"
    ours_out, ours_log = work / "ours", work / "ours.time"
    t0 = time.time()
    bases, ourses, differ = [], [], set()
    for _ in range(args.repeats):
        if args.reuse_baseline:
            base = _time_v(base_log.read_text(errors="replace"))
            base["cpu_s"] = base["user_s"] + base["sys_s"]
            base["peak_memory_bytes"] = base["largest_process_rss_bytes"]   # one process: no tree sampled
            base["loadavg_start"] = base["loadavg_end"] = float("nan")
            ours = _finish(_start(args.adpush, args.logs, ours_out, ours_log, extra), ours_log)
        elif args.parallel:
            jobs = (_start(args.baseline_adpush, args.logs, base_out, base_log),
                    _start(args.adpush, args.logs, ours_out, ours_log, extra))
            base, ours = _finish(jobs[0], base_log), _finish(jobs[1], ours_log)
        else:
            base = _finish(_start(args.baseline_adpush, args.logs, base_out, base_log), base_log)
            ours = _finish(_start(args.adpush, args.logs, ours_out, ours_log, extra), ours_log)
        bases.append(base)
        ourses.append(ours)
        a, b = digests(base_out), digests(ours_out)
        differ |= {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    differ = sorted(differ)
    base, ours = _medians(bases), _medians(ourses)
    results = {"baseline": base, "ours": ours, "runs": {"baseline": bases, "ours": ourses}, "files": len(b),
               "differing_files": differ, "bench_seconds": time.time() - t0, "cpus": os.cpu_count()}

    print(f"# build-data --source world on {args.logs} ({results['cpus']} cpus; "
          f"{'in parallel' if args.parallel else 'one after the other'}"
          f"{f'; medians of {args.repeats} pairs' if args.repeats > 1 else ''})")
    print("\n| figure | baseline | this tree | this / baseline |\n|---|---:|---:|---:|")
    for name, key, scale in (("wall s", "wall_s", 1), ("CPU s (user+sys)", "cpu_s", 1),
                             ("peak memory GB (process tree PSS)", "peak_memory_bytes", 1 / 2**30),
                             ("largest process RSS GB", "largest_process_rss_bytes", 1 / 2**30)):
        print(f"| {name} | {base[key] * scale:.2f} | {ours[key] * scale:.2f} | {ours[key] / base[key]:.2f} |")
    print(f"| load avg start / end | {base['loadavg_start']:.1f} / {base['loadavg_end']:.1f} | "
          f"{ours['loadavg_start']:.1f} / {ours['loadavg_end']:.1f} | |")
    print("\n## issue 18 targets\n\n| figure | value | limit | value / limit | reached |\n|---|---:|---:|---:|---|")
    print(f"| peak memory GB (process tree PSS) | {ours['peak_memory_bytes'] / 2**30:.2f} | <= {RSS_LIMIT_BYTES / 2**30:.2f} | "
          f"{ours['peak_memory_bytes'] / RSS_LIMIT_BYTES:.2f} | {'yes' if ours['peak_memory_bytes'] <= RSS_LIMIT_BYTES else 'NO'} |")
    print(f"| wall s (this machine, load above) | {ours['wall_s']:.1f} | <= {WALL_LIMIT_S:.0f} (quiet) | "
          f"{ours['wall_s'] / WALL_LIMIT_S:.2f} | {'yes' if ours['wall_s'] <= WALL_LIMIT_S else 'NO (see load)'} |")
    print(f"| byte-identical files | {len(b) - len(differ)}/{len(set(a) | set(b))} | all | | "
          f"{'yes' if not differ else 'NO: ' + ', '.join(differ[:10])} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
