#!/usr/bin/python3
"""Memory of azflowd's integrate workers holding one plan (issue 11, item 5: the plan mapped
read-only by every worker), side by side for one or more azflowd builds.

    plan_memory_bench.py --azflowd LABEL=PATH [--azflowd LABEL=PATH ...] --master M.h5
                         --poni P.poni [--workers 2] [--frames 50] [--npt 1000]

For each build, in turn: a fresh state folder; azflowd with W decompress and W integrate
workers; one job of the first F frames (1D, npt bins in q_nm^-1, Poisson errors) that builds the
plan into <state>/plans; azflowd stopped; a second azflowd on the same state folder and a second
job, whose workers load the plan from the .plan file (the case of every worker of a warm node).
After that job, with the workers idle and their plan still in their memory cache, each integrate
worker's /proc/PID/smaps_rollup is read: Rss, Pss (shared pages divided among the processes
that map them), Anonymous (private to the process) and the Rss of file mappings. Printed: per
worker and summed over the workers, with the .plan file's size, and the second job's frames/s
(enqueue to end, so with F small mostly start-up). Needs Debian's /usr/bin/python3
with pyzmq. Each azflow-stage is taken from beside its azflowd.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_bench as pb  # noqa: E402


def smaps_rollup(pid):
    """{field: kB} of /proc/PID/smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def integrate_pids(client):
    workers = client.call({"verb": "workers"})["result"]["workers"]
    return [w["pid"] for w in workers if w.get("role") == "integrate" and w.get("pid")]


def run_job(client, args, out):
    spec = pb.job_spec(args.master, args.poni, out, args.npt)
    spec["frames"] = {"first": 0, "last": args.frames}
    seconds = pb.time_job(client, spec, args.frames)
    os.remove(out)
    return args.frames / seconds


def measure(label, azflowd, args, root):
    base = os.path.join(root, label)
    os.makedirs(base)
    config = "log_level = \"warn\"\n"
    for start in range(2):
        daemon, client = pb.start_azflowd(azflowd, base, "pm%d_%s" % (os.getpid(), label),
                                          args.workers, config)
        try:
            for _ in range(500):
                if client.call({"verb": "status"}, 200) is not None:
                    break
            rate = run_job(client, args, os.path.join(base, "out%d.h5" % start))
            if start == 1:
                time.sleep(1.0)  # the workers idle, their plan in memory
                rows = [(pid, smaps_rollup(pid)) for pid in integrate_pids(client)]
        finally:
            client.close()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    plans = os.path.join(base, "state", "plans")
    plan_mib = sum(os.path.getsize(os.path.join(plans, f)) for f in os.listdir(plans)
                   if f.endswith(".plan")) / 2**20
    return rows, plan_mib, rate


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--azflowd", action="append", required=True, help="LABEL=PATH")
    p.add_argument("--master", required=True)
    p.add_argument("--poni", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--npt", type=int, default=1000)
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="azflow-planmem-")
    try:
        print("%-10s %6s %10s %10s %10s %10s %10s" % (
            "build", "worker", "Rss MiB", "Pss MiB", "Anon MiB", "File MiB", "plan MiB"))
        for item in args.azflowd:
            label, path = item.split("=", 1)
            rows, plan_mib, rate = measure(label, path, args, root)
            total = {k: 0 for k in ("Rss", "Pss", "Anonymous", "File")}
            for k, (pid, m) in enumerate(rows):
                file_rss = m.get("Rss", 0) - m.get("Anonymous", 0)
                for key, value in (("Rss", m.get("Rss", 0)), ("Pss", m.get("Pss", 0)),
                                   ("Anonymous", m.get("Anonymous", 0)), ("File", file_rss)):
                    total[key] += value
                print("%-10s %6d %10.1f %10.1f %10.1f %10.1f %10.1f" % (
                    label, k, m.get("Rss", 0) / 1024, m.get("Pss", 0) / 1024,
                    m.get("Anonymous", 0) / 1024, file_rss / 1024, plan_mib))
            print("%-10s %6s %10.1f %10.1f %10.1f %10.1f %10.1f" % (
                label, "sum", total["Rss"] / 1024, total["Pss"] / 1024,
                total["Anonymous"] / 1024, total["File"] / 1024, plan_mib))
            print("%-10s second job (plan from the file): %.1f frames/s" % (label, rate))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
