#!/usr/bin/python3
"""Stream jobs vs file jobs on one azflowd, and the live feed's latency (issue 16).

    /usr/bin/python3 bench/daemon/stream_bench.py [--frames 1000] [--detector Eiger4M] \\
        [--repeats 3] [--workers 1] [--build build] [--latency-fractions 0.5,0.9] \\
        [--json out.json]
    /usr/bin/python3 bench/daemon/stream_bench.py --frames 100 --detector Eiger1M --repeats 1
        (smoke run, about 20 s)

Data: an EIGER-layout bitshuffle-LZ4 uint32 series made once by ../shared/tools/gen_dataset.py
(`--frames N --detector D --dtype uint32 --compression bslz4 --seed 7`) into --data-dir
(default /tmp/azflow-bench-stream/D-N, outside the repository, kept for the next run), or an
existing series given with --master and --poni. Every job has the same settings: 1D, --npt bins
(1000) in --unit (q_nm^-1), --error-model (poisson), no pixel splitting, solid angle, dummy =
the dtype's maximum, the detector's pixel mask (the master's for a file job, the start
message's for a stream job: the same pixels); each writes its NeXus output (deleted after it).
Binaries: --build (default build/) with daemon/azflowd, daemon/azflow-stage, ctl/azflowctl and
sim/azflow-detector-sim; their SHA-256 prefixes and times go into --json.

One fresh azflowd (pipeline_bench.start_azflowd: own instance, state and runtime folders in a
temporary directory, --workers decompress + --workers integrate processes, default 1 + 1, log
level warn, every other setting default) serves every job, so all paths share stages, rings and
plan folder. Jobs are enqueued with `azflowctl enqueue` (a subprocess, for both paths, its start
included in the time) and followed by polling `status` every 10 ms. Warm-up, not counted: one
whole-series file job (stages start, rings, the plan built into <state>/plans and kept in the
integrate worker's memory), then a 20-image stream job (the first stream job restarts the
stages with rings sized for `max_frame_mib` 18).

1. File path: `azflowctl enqueue MASTER --poni ...`; frames/s = N / (enqueue to the job's final
   state, its output file written). Median of --repeats runs.
2. Stream path: `azflow-detector-sim MASTER --rate 0 --endpoint tcp://127.0.0.1:*` (each stored
   chunk sent unchanged, as fast as the socket takes them) started and bound first, then
   `azflowctl enqueue --stream ENDPOINT --poni ...`; frames/s = N / (enqueue to final state),
   the same clock as the file path. A run is good only if the job ends `succeeded` with N frames
   done and none failed, and its receive counters (status `stream`) say `received` = N,
   `missing` = 0 and `ended`; otherwise the job's `azflowctl status` is printed, kept in --json,
   and the script exits 1 at the end. File and stream runs alternate (file, stream, file, ...)
   so that both see the same machine. Ratio = median stream / median file frames/s (issue 16's
   goal: >= 0.9). Also reported per run: "sustained" = (n - 1) / (last - first arrival of the
   job's results on the daemon's live PUB socket, in this process), i.e. the rate without the
   job's start and end costs; enqueue to first result; last result to final state; the
   source's `receive_rate_per_s`; the simulator's summary line and CPU seconds (wait4); the CPU
   seconds of azflowd's process tree (main process and stages, /proc) over the run; each
   stage's `busy_s` per frame (status counters, which come with the stages' 1 s heartbeats: read
   1.2 s after the job ends; wall-clock time in the stage's work, so CPU contention inflates it).
3. Latency: for each fraction f of --latency-fractions, rate R = f x the median *sustained*
   stream rate of step 2 (the pipeline's steady rate, so 90 % means 90 % of what it kept up with
   in step 2). The simulator runs in SIMPLON REST mode (`--rest 127.0.0.1:0 --rate R`): the
   stream job is enqueued, `arm` sends the start message, the script waits until the daemon has
   sized the job from it (`frames_total` = N) and --settle s (1) more, then sends `trigger`, on
   which the simulator sends image k at t0 + k / R (its steady clock, t0 read when it handles
   the request; an image is never skipped). This process subscribes to the daemon's live PUB
   feed (`live_endpoint` from status; topic `job.<id>`, a JSON header with `frame`;
   docs/protocol.md "Live results") before any job and stamps each message on arrival with
   time.monotonic (CLOCK_MONOTONIC; same machine).
   **Latency of image k = (arrival of job frame k's result on the live feed, in this process)
   - (T + k / R)**, T = this process's clock just before it sends the trigger request. The
   simulator does not report when it sent each image, so the send time is the schedule, not an
   observation. T precedes the simulator's t0 by the request's trip (the round trip of a GET to
   the same REST server just before is printed, about 0.5 ms), so the figure is high by at most
   that. The simulator's `send` returns once ZeroMQ queued the message (send high-water mark
   1000 messages), so an image the pipeline is not ready for waits in the simulator's queue,
   the kernel's socket buffers, the source's receive queue (64) and the rings, and that wait is
   counted, as for a detector taking images at a fixed rate. The latency covers the simulator's
   message build and send, ZeroMQ over loopback TCP, source, decompress, integrate, the result
   sink writing the row to its shard file and publishing it, and this subscriber's receive.
   p50 and p99 are numpy percentiles (linear interpolation) over all frames of all
   --latency-repeats runs at that rate (per run too), also over the second half of each series
   alone (without the job's first images, which wait for the integrate worker to get the job's
   configuration and plan). Frames missing from the feed (PUB drops beyond its high-water mark)
   are counted.

Results: a table on stdout, the load average (1 min) before and after, and --json (every run,
every latency).
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import pipeline_bench as pb  # noqa: E402  (start_azflowd, Client, tree)

FINAL = ("succeeded", "warning", "failed", "cancelled")
WARMUP_FRAMES = 20
HEARTBEAT_WAIT_S = 1.2  # azflowd's default heartbeat_interval_ms is 1000


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1000, help="frames of the generated series")
    p.add_argument("--detector", default="Eiger4M",
                   help="pyFAI detector name for gen_dataset.py (Eiger4M, Eiger1M, Pilatus1M, ...)")
    p.add_argument("--data-dir", help="where the series is made and kept "
                   "(default /tmp/azflow-bench-stream/DETECTOR-FRAMES)")
    p.add_argument("--gen", default=os.path.join(ROOT, "..", "shared", "tools", "gen_dataset.py"))
    p.add_argument("--master", help="an existing series instead (then --poni too)")
    p.add_argument("--poni")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--azflowd")
    p.add_argument("--azflowctl")
    p.add_argument("--sim")
    p.add_argument("--workers", type=int, default=1, help="azflowd decompress = integrate workers")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--npt", type=int, default=1000)
    p.add_argument("--unit", default="q_nm^-1")
    p.add_argument("--error-model", default="poisson")
    p.add_argument("--latency-fractions", default="0.5,0.9",
                   help="sim rates for the latency runs, as fractions of the sustained stream rate")
    p.add_argument("--latency-repeats", type=int, help="runs per rate (default --repeats)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds between the daemon sizing the job (start message) and trigger")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--json")
    return p.parse_args()


# ---------------------------------------------------------------- data

def ensure_dataset(args):
    if args.master:
        if not args.poni:
            raise SystemExit("--master needs --poni")
        return os.path.abspath(args.master), os.path.abspath(args.poni), pb.frame_count(args.master)
    d = args.data_dir or f"/tmp/azflow-bench-stream/{args.detector}-{args.frames}"
    master, poni = os.path.join(d, "bench_master.h5"), os.path.join(d, "bench.poni")
    if not (os.path.exists(master) and os.path.exists(poni)):
        print(f"making the series in {d} ({args.frames} {args.detector} frames) ...", flush=True)
        subprocess.run([sys.executable, args.gen, "--out-dir", d, "--name", "bench",
                        "--frames", str(args.frames), "--detector", args.detector,
                        "--dtype", "uint32", "--compression", "bslz4", "--seed", "7",
                        "--quiet"], check=True)
    return master, poni, pb.frame_count(master)


# ---------------------------------------------------------------- processes

def remove(path):
    if os.path.exists(path):
        os.remove(path)


def cpu_s(pid):
    """utime + stime of one process (all its threads) so far; 0 if it is gone."""
    try:
        return pb.cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_s(pid):
    """CPU seconds of azflowd and its live stage processes."""
    return sum(cpu_s(p) for p in pb.tree(pid))


class Sim:
    """azflow-detector-sim in the background: endpoint (and REST address) from its stdout,
    summary line and CPU seconds (wait4) once it exits."""

    def __init__(self, exe, master, workdir, rate=0.0, frames=None, rest=False):
        self.err_path = os.path.join(workdir, f"sim{time.monotonic_ns()}.err")
        cmd = [exe, master, "--endpoint", "tcp://127.0.0.1:*", "--rate", repr(rate)]
        if frames:
            cmd += ["--frames", str(frames)]
        if rest:
            cmd += ["--rest", "127.0.0.1:0"]
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.endpoint = self.rest = None
        self.cpu = self.summary = self.code = None
        deadline = time.monotonic() + 60
        while self.endpoint is None or (rest and self.rest is None):
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"azflow-detector-sim did not start: {self.summary}")
            if line.startswith("azflow-detector-sim: bound "):
                self.endpoint = line.split("bound ", 1)[1].strip()
            elif line.startswith("azflow-detector-sim: REST on "):
                self.rest = "http://" + line.split("REST on ", 1)[1].strip()

    def put(self, command, timeout=60):
        req = urllib.request.Request(f"{self.rest}/detector/api/1.8.0/command/{command}",
                                     data=b"", method="PUT")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()

    def rtt(self, n=5):
        """Smallest round trip of GET stream mode (the REST server's turn-around), seconds."""
        best = 1e9
        for _ in range(n):
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{self.rest}/stream/api/1.8.0/config/mode",
                                        timeout=10) as r:
                r.read()
            best = min(best, time.monotonic() - t0)
        return best

    def wait(self, timeout=120, signal_first=False):
        if self.code is None:
            if signal_first:
                self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while True:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    self.proc.kill()
                    pid, status, usage = os.wait4(self.proc.pid, 0)
                    break
                time.sleep(0.01)
            self.code = os.waitstatus_to_exitcode(status)
            self.proc.returncode = self.code
            self.cpu = usage.ru_utime + usage.ru_stime
            self.err.close()
            with open(self.err_path) as f:
                lines = [line.strip() for line in f if line.strip()]
            self.summary = lines[-1] if lines else ""
        return self.code

    def stop(self):
        return self.wait(10, signal_first=True)


class LiveFeed:
    """SUB on the daemon's live PUB endpoint (thread): per job, (frame, status, arrival)."""

    def __init__(self, endpoint):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 1000000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"job.")
        self.sock.connect(endpoint)
        self.zmq = zmq
        self.lock = threading.Lock()
        self.frames = {}
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            if not self.sock.poll(100):
                continue
            parts = self.sock.recv_multipart()
            t = time.monotonic()
            header = json.loads(parts[1])
            if parts[0].decode() != f"job.{header['job']}":
                continue
            with self.lock:
                self.frames.setdefault(header["job"], []).append(
                    (header["frame"], header["status"], t))

    def of(self, job_id):
        with self.lock:
            return list(self.frames.get(job_id, []))

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        self.ctx.term()


# ---------------------------------------------------------------- jobs

class Bench:
    def __init__(self, args, master, poni, frames, work):
        self.args, self.master, self.poni, self.frames, self.work = args, master, poni, frames, work
        self.instance = f"streambench{os.getpid()}"
        self.daemon, self.client = pb.start_azflowd(args.azflowd, work, self.instance,
                                                    args.workers, "log_level = \"warn\"\n")
        self.control = f"ipc://{work}/run/{self.instance}.control"
        for _ in range(500):
            if self.client.call({"verb": "status"}, 200) is not None:
                break
        self.live = LiveFeed(self.daemon_status()["live_endpoint"])
        self.n = 0
        self.failures = []

    def daemon_status(self):
        return self.client.call({"verb": "status"})["result"]["daemon"]

    def busy(self):
        return {f"{s['role']}/{s['worker']}": s["counters"]["busy_s"]
                for s in self.daemon_status()["stages"]}

    def job(self, job_id):
        return self.client.call({"verb": "status", "job_id": job_id})["result"]["job"]

    def enqueue(self, inputs, extra=()):
        """azflowctl enqueue INPUTS with the benchmark's settings; (job id, output, t0)."""
        self.n += 1
        out = os.path.join(self.work, f"job{self.n}.h5")
        a = self.args
        cmd = [a.azflowctl, "--endpoint", self.control, "enqueue", *inputs, "--poni", self.poni,
               "--npt", str(a.npt), "--unit", a.unit, "--error-model", a.error_model,
               "-o", out, *extra]
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return int(r.stdout.strip()), out, t0

    def wait_final(self, job_id, timeout=1800):
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in FINAL:
                return job, time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} not final after {timeout} s: {job}")
            time.sleep(0.01)

    def ctl_status_text(self, job_id):
        r = subprocess.run([self.args.azflowctl, "--endpoint", self.control, "status",
                            str(job_id)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        return r.stdout

    def check(self, kind, job, frames, stream):
        """Problems with a finished job (empty if it succeeded with every frame)."""
        problems = []
        if job["state"] != "succeeded":
            problems.append(f"state {job['state']} ({job.get('error')})")
        if job["frames_done"] != frames or job["frames_failed"]:
            problems.append(f"frames_done {job['frames_done']}, failed {job['frames_failed']}"
                            f" of {frames}")
        if stream:
            c = job.get("stream") or {}
            if c.get("missing") != 0 or c.get("received") != frames or not c.get("ended"):
                problems.append(f"stream counters {c}")
        if problems:
            text = self.ctl_status_text(job["job_id"])
            self.failures.append(dict(kind=kind, job=job, problems=problems, status_text=text))
            print(f"  !! {kind} job {job['job_id']}: {'; '.join(problems)}\n"
                  f"  azflowctl status {job['job_id']}:\n{text}", flush=True)
        return problems

    def measured(self, run):
        """Runs `run()` with azflowd's CPU and stage busy seconds counted around it."""
        cpu0, busy0 = tree_cpu_s(self.daemon.pid), self.busy()
        result = run()
        time.sleep(HEARTBEAT_WAIT_S)  # the stages' counters come with their heartbeats
        busy1 = self.busy()
        result["azflowd_cpu_s"] = round(tree_cpu_s(self.daemon.pid) - cpu0, 3)
        result["busy_ms_per_frame"] = {k: round(1e3 * (v - busy0.get(k, 0.0)) / self.frames, 3)
                                       for k, v in busy1.items()}
        return result

    # -------------------------------------------------------------- the paths

    def timeline(self, job_id, frames, t0, t1):
        """From the live feed: sustained frames/s (first to last result), enqueue to the first
        result, last result to the final state."""
        arrivals = sorted(t for _, status, t in self.live.of(job_id) if status == "ok")
        if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
            return dict(sustained_fps=float("nan"), live_frames=len(arrivals),
                        to_first_result_s=None, last_result_to_final_s=None)
        return dict(sustained_fps=(len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
                    live_frames=len(arrivals), to_first_result_s=round(arrivals[0] - t0, 3),
                    last_result_to_final_s=round(t1 - arrivals[-1], 3))

    def file_job(self, frames=None, kind="file"):
        extra = ["--frames", f"0:{frames}"] if frames else []
        frames = frames or self.frames
        job_id, out, t0 = self.enqueue([self.master], extra)
        job, t1 = self.wait_final(job_id)
        self.check(kind, job, frames, False)
        remove(out)
        return dict(job=job_id, seconds=t1 - t0, fps=frames / (t1 - t0), state=job["state"],
                    **self.timeline(job_id, frames, t0, t1))

    def stream_job(self, frames=None, kind="stream"):
        n = frames or self.frames
        sim = Sim(self.args.sim, self.master, self.work, 0.0, frames)
        try:
            job_id, out, t0 = self.enqueue(["--stream", sim.endpoint])
            job, t1 = self.wait_final(job_id)
        finally:
            code = sim.wait(60)
        problems = self.check(kind, job, n, True)
        if code != 0:
            problems.append(f"simulator exit code {code}: {sim.summary}")
        remove(out)
        c = job.get("stream") or {}
        return dict(job=job_id, seconds=t1 - t0, fps=n / (t1 - t0), state=job["state"],
                    ok=not problems, problems=problems, **self.timeline(job_id, n, t0, t1),
                    received=c.get("received"),
                    missing=c.get("missing"), receive_rate_per_s=c.get("receive_rate_per_s"),
                    sim_summary=sim.summary, sim_cpu_s=round(sim.cpu, 3))

    def latency_job(self, rate):
        n, a = self.frames, self.args
        sim = Sim(a.sim, self.master, self.work, rate, None, rest=True)
        try:
            job_id, out, _ = self.enqueue(["--stream", sim.endpoint])
            sim.put("arm")  # the start message; returns once it is sent
            deadline = time.monotonic() + 120
            while self.job(job_id)["frames_total"] != n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job_id} never sized from the start message: "
                                     f"{self.job(job_id)}")
                time.sleep(0.01)
            time.sleep(a.settle)
            rtt = sim.rtt()
            result = {}

            def trigger():
                result["t_trigger"] = time.monotonic()
                sim.put("trigger", timeout=n / rate + 600)
                result["t_sent"] = time.monotonic()

            thread = threading.Thread(target=trigger)
            thread.start()
            thread.join()
            sim.put("disarm")
            job, _ = self.wait_final(job_id)
        finally:
            sim.stop()
        problems = self.check(f"latency {rate:.1f}/s", job, n, True)
        t_trigger = result["t_trigger"]
        seen = {}
        for frame, status, t in self.live.of(job_id):
            if status == "ok" and frame not in seen:
                seen[frame] = t - (t_trigger + frame / rate)
        lat = [seen[k] for k in sorted(seen)]
        later = [seen[k] for k in sorted(seen) if k >= n // 2]  # the series' second half
        remove(out)
        send_s = result["t_sent"] - t_trigger
        return dict(job=job_id, rate=rate, ok=not problems, problems=problems,
                    latencies_s=lat, second_half_latencies_s=later, live_frames=len(seen),
                    not_on_feed=n - len(seen),
                    rest_rtt_ms=round(1e3 * rtt, 3), trigger_to_all_sent_s=round(send_s, 3),
                    schedule_s=round((n - 1) / rate, 3), sim_summary=sim.summary,
                    first_frames_ms=[round(1e3 * x, 2) for x in lat[:5]],
                    max_ms=round(1e3 * max(lat), 2) if lat else None)

    def close(self):
        self.live.close()
        self.client.close()
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(60)


# ---------------------------------------------------------------- main

def pct(values, q):
    import numpy
    return float(numpy.percentile(numpy.asarray(values), q)) if values else float("nan")


def main():
    args = parse_args()
    b = args.build
    args.azflowd = args.azflowd or os.path.join(b, "daemon", "azflowd")
    args.azflowctl = args.azflowctl or os.path.join(b, "ctl", "azflowctl")
    args.sim = args.sim or os.path.join(b, "sim", "azflow-detector-sim")
    fractions = [float(x) for x in args.latency_fractions.split(",") if x]
    lat_repeats = args.latency_repeats or args.repeats
    binaries = {}
    for exe in (args.azflowd, os.path.join(os.path.dirname(args.azflowd), "azflow-stage"),
                args.azflowctl, args.sim):
        with open(exe, "rb") as f:
            binaries[os.path.abspath(exe)] = dict(
                sha256=hashlib.sha256(f.read()).hexdigest()[:16],
                mtime_utc=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(exe))))
    master, poni, frames = ensure_dataset(args)
    load_before = os.getloadavg()
    t_start = time.time()
    print(f"{frames} frames of {master}; azflowd {args.workers} decompress + {args.workers} "
          f"integrate workers; load average {load_before[0]:.2f}", flush=True)
    work = tempfile.mkdtemp(prefix="azflow-stream-bench-")
    bench = None
    try:
        bench = Bench(args, master, poni, frames, work)
        w = min(WARMUP_FRAMES, frames)
        warm_file = bench.file_job(None, "warm-up file")["seconds"]
        warm_stream = bench.stream_job(w, "warm-up stream")["seconds"]
        print(f"warm-up: file job {warm_file:.2f} s ({frames} frames), stream job "
              f"{warm_stream:.2f} s ({w} frames)", flush=True)
        file_runs, stream_runs = [], []
        for r in range(args.repeats):
            f = bench.measured(bench.file_job)
            file_runs.append(f)
            print(f"  file   {f['seconds']:7.2f} s {f['fps']:7.1f} frames/s  "
                  f"sustained {f['sustained_fps']:.1f}/s  enqueue to first result "
                  f"{f['to_first_result_s']} s, last result to final {f['last_result_to_final_s']}"
                  f" s  azflowd CPU {f['azflowd_cpu_s']:.2f} s  busy ms/frame "
                  f"{f['busy_ms_per_frame']}", flush=True)
            s = bench.measured(bench.stream_job)
            stream_runs.append(s)
            print(f"  stream {s['seconds']:7.2f} s {s['fps']:7.1f} frames/s  "
                  f"sustained {s['sustained_fps']:.1f}/s  enqueue to first result "
                  f"{s['to_first_result_s']} s, last result to final {s['last_result_to_final_s']}"
                  f" s  received {s['received']} missing "
                  f"{s['missing']}  source {s['receive_rate_per_s']} images/s  "
                  f"azflowd CPU {s['azflowd_cpu_s']:.2f} s  sim CPU {s['sim_cpu_s']:.2f} s  "
                  f"busy ms/frame {s['busy_ms_per_frame']}\n"
                  f"         sim: {s['sim_summary']}{'' if s['ok'] else '  FAILED'}", flush=True)
        file_fps = statistics.median(r["fps"] for r in file_runs)
        stream_fps = statistics.median(r["fps"] for r in stream_runs)
        sustained = statistics.median(r["sustained_fps"] for r in stream_runs)
        file_sustained = statistics.median(r["sustained_fps"] for r in file_runs)
        cpu = dict(file_azflowd=1e3 * statistics.median(r["azflowd_cpu_s"] for r in file_runs)
                   / frames,
                   stream_azflowd=1e3 * statistics.median(r["azflowd_cpu_s"] for r in stream_runs)
                   / frames,
                   stream_sim=1e3 * statistics.median(r["sim_cpu_s"] for r in stream_runs) / frames)
        latency = []
        if not args.skip_latency:
            for frac in fractions:
                rate = frac * sustained
                runs = []
                for _ in range(lat_repeats):
                    run = bench.latency_job(rate)
                    runs.append(run)
                    lat = run["latencies_s"]
                    half = run["second_half_latencies_s"]
                    print(f"  latency at {rate:6.1f}/s ({frac:.0%}): p50 {1e3 * pct(lat, 50):7.1f}"
                          f" ms  p99 {1e3 * pct(lat, 99):7.1f} ms  max {run['max_ms']} ms  "
                          f"(second half p50 {1e3 * pct(half, 50):.1f}, p99 "
                          f"{1e3 * pct(half, 99):.1f} ms)  "
                          f"on feed {run['live_frames']}/{frames}  sim sent all in "
                          f"{run['trigger_to_all_sent_s']} s (schedule {run['schedule_s']} s)  "
                          f"REST rtt {run['rest_rtt_ms']} ms  first frames {run['first_frames_ms']}"
                          f" ms{'' if run['ok'] else '  FAILED'}", flush=True)
                pooled = [x for run in runs for x in run["latencies_s"]]
                halves = [x for run in runs for x in run["second_half_latencies_s"]]
                latency.append(dict(fraction=frac, rate=rate, p50_ms=1e3 * pct(pooled, 50),
                                    p99_ms=1e3 * pct(pooled, 99),
                                    second_half_p50_ms=1e3 * pct(halves, 50),
                                    second_half_p99_ms=1e3 * pct(halves, 99),
                                    max_ms=max(r["max_ms"] or 0 for r in runs),
                                    per_run=[dict(r, p50_ms=1e3 * pct(r["latencies_s"], 50),
                                                  p99_ms=1e3 * pct(r["latencies_s"], 99))
                                             for r in runs]))
    finally:
        if bench is not None:
            bench.close()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    summary = dict(
        frames=frames, master=master, detector=args.detector, workers=args.workers,
        npt=args.npt, unit=args.unit, error_model=args.error_model, repeats=args.repeats,
        host=platform.node(), cpu_count=os.cpu_count(), binaries=binaries,
        date_utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime(t_start)),
        load_before=load_before, load_after=load_after, file_runs=file_runs,
        stream_runs=stream_runs, file_fps=file_fps, stream_fps=stream_fps,
        ratio=stream_fps / file_fps, sustained_fps=sustained,
        file_sustained_fps=file_sustained, ratio_sustained=sustained / file_sustained,
        cpu_ms_per_frame=cpu, latency=latency,
        failures=bench.failures if bench else [])
    print(f"\n{frames} frames, median of {args.repeats}, {args.workers} + {args.workers} workers")
    print(f"  file job          {file_fps:8.1f} frames/s   runs "
          + " ".join(f"{r['fps']:.1f}" for r in file_runs))
    print(f"  stream job        {stream_fps:8.1f} frames/s   runs "
          + " ".join(f"{r['fps']:.1f}" for r in stream_runs)
          + "   missing " + " ".join(str(r["missing"]) for r in stream_runs))
    print(f"  stream / file = {summary['ratio']:.3f} (issue 16 goal >= 0.9)")
    print(f"  sustained (live feed, first to last result): file {file_sustained:.1f}, stream "
          f"{sustained:.1f} frames/s, stream / file = {summary['ratio_sustained']:.3f}")
    print(f"  CPU ms per frame (medians): azflowd and its stages {cpu['file_azflowd']:.1f} file, "
          f"{cpu['stream_azflowd']:.1f} stream; azflow-detector-sim {cpu['stream_sim']:.1f}")
    for entry in latency:
        print(f"  latency at {entry['rate']:.1f} images/s ({entry['fraction']:.0%} of sustained):"
              f" p50 {entry['p50_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms, max "
              f"{entry['max_ms']:.1f} ms (second half of each series: p50 "
              f"{entry['second_half_p50_ms']:.1f} ms, p99 {entry['second_half_p99_ms']:.1f} ms)")
    print(f"  load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {args.json}")
    if summary["failures"]:
        print(f"{len(summary['failures'])} job(s) did not succeed with every image "
              "(see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
