#!/usr/bin/python3
"""azflowd end to end vs `azflow integrate` vs pyFAI, side by side on one EIGER series.

    /usr/bin/python3 bench/daemon/pipeline_bench.py --master DIR/NAME_master.h5 --poni NAME.poni \\
        --azflowd build-daemon/daemon/azflowd --azflow build-daemon/cli/azflow \\
        [--workers 2] [--threads 2] [--repeats 3] [--pyfai-frames 50] --json out.json

Every path integrates the same frames with the same settings: 1D, 1000 bins, q_nm^-1, no pixel
splitting, solid angle, Poisson error model, dummy = 0xFFFFFFFF (detector gaps).

- azflowd: a fresh daemon (own instance, state and runtime folders in a temporary directory,
  `workers` decompress + `workers` integrate processes); time from sending `enqueue` to the job
  being final (output file complete and renamed), polled every 10 ms. Two jobs per daemon, one
  after the other: "cold" is the first job of the fresh daemon with an empty state folder (it
  also pays for starting the stage processes, creating the rings and one integrate worker
  building the plan into <state>/plans while the other waits for it); "warm" is a second job of
  the same geometry (stages up, plan in the workers' memory), the resident service's steady
  state. Then "restart": the first job of a second fresh daemon on the same state folder (stages
  start, the plan is read from <state>/plans).
- azflow integrate: one process, `threads` worker threads, wall time of the whole command.
- pyFAI 0.21: reading and decompressing each frame with h5py (HDF5's bitshuffle filter plugin)
  and integrate1d(method=("no", "csr", "cython")) with OMP_NUM_THREADS = threads, timed per
  frame over `pyfai_frames` frames after one warm-up frame (which builds pyFAI's CSR matrix) --
  reusing bench/integrate/pyfai_bench.py's frame reader and integrator set-up. pyFAI decodes at
  a few frames/s, so it runs on fewer frames; frames/s compare per-frame throughput.
Peak memory: the largest sum over the process tree of PSS (proportional set size, so shared
memory rings are counted once) of anonymous and shared-memory pages (Pss_Anon + Pss_Shmem; the
input files' read-only mappings are page cache and left out), sampled every 20 ms from
/proc/<pid>/smaps_rollup.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integrate"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--master", required=True)
    p.add_argument("--poni", required=True)
    p.add_argument("--azflowd", required=True)
    p.add_argument("--azflow", required=True)
    p.add_argument("--workers", type=int, default=2, help="azflowd decompress = integrate workers")
    p.add_argument("--threads", type=int, default=2, help="azflow integrate / pyFAI threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pyfai-frames", type=int, default=50)
    p.add_argument("--npt", type=int, default=1000)
    p.add_argument("--rings", default="compressed_slots = 16\ncompressed_slot_mib = 8\n"
                   "frames_slots = 8\nresults_slots = 64",
                   help="[rings] section of the daemon's config")
    p.add_argument("--json", required=True)
    p.add_argument("--skip-pyfai", action="store_true")
    return p.parse_args()


# ---------------------------------------------------------------- processes and ports

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far, all its threads (/proc/PID/stat).
    Raises OSError once the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- memory sampling

def tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_kib(pid):
    """PSS of anonymous + shared-memory pages (rings counted once over the processes that map
    them); clean file-backed pages (read-only mappings of the input files, binaries) are page
    cache, not the process's memory, and are left out."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


class PeakMemory:
    """Samples the PSS of a process tree in a thread; .peak_mib after stop()."""

    def __init__(self, pid, period=0.02):
        self.pid, self.period, self.peak = pid, period, 0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            self.peak = max(self.peak, sum(pss_kib(p) for p in tree(self.pid)))
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak / 1024.0


# ---------------------------------------------------------------- azflow integrate

def run_azflow(args, frames, workdir):
    out = os.path.join(workdir, "azflow_out.h5")
    cmd = [args.azflow, "integrate", args.master, "--poni", args.poni, "--npt", str(args.npt),
           "--unit", "q_nm^-1", "--error-model", "poisson", "--threads", str(args.threads),
           "--quiet", "--overwrite", "-o", out]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    mem = PeakMemory(proc.pid)
    code = proc.wait()
    elapsed = time.perf_counter() - t0
    peak = mem.stop()
    if code != 0:
        raise SystemExit(f"azflow integrate failed with {code}")
    return dict(seconds=elapsed, fps=frames / elapsed, peak_mib=peak)


# ---------------------------------------------------------------- azflowd

class Client:
    def __init__(self, endpoint):
        import zmq
        self.zmq = zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 0

    def call(self, request, timeout_ms=10000):
        self.next_id += 1
        request = dict(request, v=1, id=self.next_id)
        self.sock.send_string(json.dumps(request))
        if not self.sock.poll(timeout_ms):
            return None
        return json.loads(self.sock.recv_string())

    def close(self):
        self.sock.close()
        self.ctx.term()


def job_spec(master, poni, output, npt):
    """The benchmarks' job: 1D, `npt` bins in q_nm^-1, Poisson errors, written to `output`."""
    with open(poni) as f:
        poni_text = f.read()
    return dict(datasets=[os.path.abspath(master)], poni_path=os.path.abspath(poni),
                poni_text=poni_text, output_path=output,
                settings=dict(npt_rad=npt, unit="q_nm^-1", error_model="poisson"))


def time_job(client, spec, frames, where="", enqueued=None):
    """Enqueues `spec` and polls until the job is final; returns the seconds from enqueue to the
    end. Exits (naming `where`) unless the job succeeded with `frames` frames done. `enqueued`,
    if given, is called with the job id right after the enqueue."""
    t0 = time.perf_counter()
    job_id = client.call({"verb": "enqueue", "spec": spec})["result"]["job_id"]
    if enqueued is not None:
        enqueued(job_id)
    while True:
        job = client.call({"verb": "status", "job_id": job_id})["result"]["job"]
        if job["state"] in ("succeeded", "warning", "failed", "cancelled"):
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - t0
    if job["state"] != "succeeded" or job["frames_done"] != frames:
        raise SystemExit(f"azflowd job ended {job}{where}")
    return seconds


def start_azflowd(azflowd, base, instance, workers, config_text):
    """Starts `azflowd` with `config_text` as its config file, state and runtime folders inside
    `base`, `workers` decompress and integrate workers; returns (process, control Client)."""
    config = os.path.join(base, "azflowd.toml")
    with open(config, "w") as f:
        f.write(config_text)
    daemon = subprocess.Popen([azflowd, "--config", config, "--instance", instance,
                               "--state-dir", os.path.join(base, "state"),
                               "--runtime-dir", os.path.join(base, "run"),
                               "--workers", str(workers), "--integrate-workers", str(workers)])
    return daemon, Client(f"ipc://{base}/run/{instance}.control")


def daemon_jobs(args, frames, base, instance, runs):
    """Starts azflowd on `base` (state and runtime folders inside it), times one job per name in
    `runs` one after the other, stops it; returns (seconds per run, peak MiB, final status)."""
    daemon, client = start_azflowd(args.azflowd, base, instance, args.workers,
                                   f"log_level = \"warn\"\n[rings]\n{args.rings}\n")
    mem = PeakMemory(daemon.pid)
    try:
        for _ in range(500):
            if client.call({"verb": "status"}, 200) is not None:
                break
        times = []
        for run in runs:
            out = os.path.join(base, f"azflowd_{run}.h5")
            times.append(time_job(client, job_spec(args.master, args.poni, out, args.npt), frames))
            os.remove(out)
        status = client.call({"verb": "status"})["result"]["daemon"]
    finally:
        client.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        peak = mem.stop()
    return times, peak, status


def run_azflowd(args, frames, workdir, repeat):
    """A fresh daemon with an empty state folder: "cold" (first job: stages start, the plan is
    built once into <state>/plans) and "warm" (second job); then a second fresh daemon on the same
    state folder: "restart" (its first job, the plan read from <state>/plans)."""
    base = os.path.join(workdir, f"d{repeat}")
    os.makedirs(base, exist_ok=True)
    instance = f"bench{os.getpid()}_{repeat}"
    times, peak, status = daemon_jobs(args, frames, base, instance, ("cold", "warm"))
    restart, _, _ = daemon_jobs(args, frames, base, instance, ("restart",))
    busy = {f"{s['role']}/{s['worker']}": round(s["counters"]["busy_s"], 2)
            for s in status["stages"]}
    shutil.rmtree(base, ignore_errors=True)
    return dict(seconds=times[0], fps=frames / times[0], warm_seconds=times[1],
                warm_fps=frames / times[1], restart_seconds=restart[0],
                restart_fps=frames / restart[0], peak_mib=peak, stage_busy_s=busy)


# ---------------------------------------------------------------- pyFAI

def run_pyfai(args):
    """Runs this script's pyFAI part in a child with OMP_NUM_THREADS set (pyfai_bench's rule)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    code = ("import json,sys; sys.path.insert(0, %r); import pipeline_bench as b; "
            "print(json.dumps(b.pyfai_end_to_end(%r, %r, %d, %d)))"
            % (HERE, args.master, args.poni, args.pyfai_frames, args.npt))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    mem = PeakMemory(proc.pid)
    out, _ = proc.communicate()
    peak = mem.stop()
    if proc.returncode != 0:
        raise SystemExit("pyFAI run failed")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_mib"] = peak
    return result


def pyfai_end_to_end(master, poni, frames, npt):
    """Per frame: h5py read (bitshuffle plugin decompresses) + integrate1d; after one warm-up."""
    import numpy
    import pyFAI
    import pyfai_bench
    source = pyfai_bench.H5Frames(master)
    ai = pyFAI.load(poni)
    dummy = float(numpy.iinfo(source.dtype).max) if source.dtype.kind == "u" else None
    call = pyfai_bench.integrate_call(ai, "1d_no", npt, 360, dummy)
    call(source[0])
    times = []
    t_all = time.perf_counter()
    for i in range(1, frames + 1):
        t0 = time.perf_counter()
        call(source[i])
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    return dict(frames=frames, seconds=total, fps=frames / total,
                median_frame_s=statistics.median(times), pyfai_version=pyFAI.version)


# ---------------------------------------------------------------- main

def frame_count(master):
    import h5py
    with h5py.File(master, "r") as f:
        group = f["/entry/data"]
        return sum(group[k].shape[0] for k in group if k.startswith("data_"))


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    args = parse_args()
    frames = frame_count(args.master)
    workdir = tempfile.mkdtemp(prefix="azflow-pipeline-bench-")
    try:
        daemon_runs, azflow_runs = [], []
        for r in range(args.repeats):  # interleaved, so both see the same machine state
            azflow_runs.append(run_azflow(args, frames, workdir))
            print(f"  azflow integrate  {azflow_runs[-1]['seconds']:7.2f} s  "
                  f"{azflow_runs[-1]['fps']:7.1f} frames/s  peak {azflow_runs[-1]['peak_mib']:7.0f} MiB",
                  flush=True)
            daemon_runs.append(run_azflowd(args, frames, workdir, r))
            d = daemon_runs[-1]
            print(f"  azflowd cold      {d['seconds']:7.2f} s  {d['fps']:7.1f} frames/s  "
                  f"peak {d['peak_mib']:7.0f} MiB\n"
                  f"  azflowd warm      {d['warm_seconds']:7.2f} s  {d['warm_fps']:7.1f} frames/s  "
                  f"(stage busy s over both jobs {d['stage_busy_s']})\n"
                  f"  azflowd restart   {d['restart_seconds']:7.2f} s  "
                  f"{d['restart_fps']:7.1f} frames/s  (fresh daemon, plans kept)", flush=True)
        pyfai = None if args.skip_pyfai else run_pyfai(args)
        if pyfai:
            print(f"  pyFAI             {pyfai['seconds']:7.2f} s  {pyfai['fps']:7.1f} frames/s  "
                  f"peak {pyfai['peak_mib']:7.0f} MiB  ({pyfai['frames']} frames)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = dict(
        frames=frames, master=os.path.abspath(args.master), workers=args.workers,
        threads=args.threads, npt=args.npt, rings=args.rings, host=platform.node(),
        cpu_count=os.cpu_count(), date=time.strftime("%Y-%m-%d"),
        azflowd=dict(runs=daemon_runs, median_fps=median_of(daemon_runs, "fps"),
                     median_s=median_of(daemon_runs, "seconds"),
                     median_warm_fps=median_of(daemon_runs, "warm_fps"),
                     median_warm_s=median_of(daemon_runs, "warm_seconds"),
                     median_restart_fps=median_of(daemon_runs, "restart_fps"),
                     median_restart_s=median_of(daemon_runs, "restart_seconds"),
                     median_peak_mib=median_of(daemon_runs, "peak_mib")),
        azflow_integrate=dict(runs=azflow_runs, median_fps=median_of(azflow_runs, "fps"),
                              median_s=median_of(azflow_runs, "seconds"),
                              median_peak_mib=median_of(azflow_runs, "peak_mib")),
        pyfai=pyfai)
    d, a = summary["azflowd"], summary["azflow_integrate"]
    summary["ratio_azflowd_vs_azflow"] = d["median_fps"] / a["median_fps"]
    summary["ratio_azflowd_warm_vs_azflow"] = d["median_warm_fps"] / a["median_fps"]
    summary["ratio_azflowd_restart_vs_azflow"] = d["median_restart_fps"] / a["median_fps"]
    print(f"\n{frames} frames, {args.repeats} repeats (medians)")
    print(f"  azflowd cold     {d['median_fps']:8.1f} frames/s  {d['median_s']:7.2f} s  "
          f"peak {d['median_peak_mib']:7.0f} MiB  (first job of a fresh daemon)")
    print(f"  azflowd warm     {d['median_warm_fps']:8.1f} frames/s  {d['median_warm_s']:7.2f} s  "
          f"(second job, same geometry: stages up, plan cached)")
    print(f"  azflowd restart  {d['median_restart_fps']:8.1f} frames/s  "
          f"{d['median_restart_s']:7.2f} s  (first job of a fresh daemon, <state>/plans kept)")
    print(f"  azflow integrate {a['median_fps']:8.1f} frames/s  {a['median_s']:7.2f} s  "
          f"peak {a['median_peak_mib']:7.0f} MiB")
    print(f"  azflowd / azflow integrate = {summary['ratio_azflowd_vs_azflow']:.3f} cold, "
          f"{summary['ratio_azflowd_warm_vs_azflow']:.3f} warm, "
          f"{summary['ratio_azflowd_restart_vs_azflow']:.3f} restart")
    if pyfai:
        summary["ratio_azflowd_vs_pyfai"] = d["median_fps"] / pyfai["fps"]
        print(f"  pyFAI            {pyfai['fps']:8.1f} frames/s ({pyfai['frames']} frames)  "
              f"peak {pyfai['peak_mib']:7.0f} MiB")
        print(f"  azflowd (cold) / pyFAI = {summary['ratio_azflowd_vs_pyfai']:.1f}x")
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
