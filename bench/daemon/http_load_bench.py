#!/usr/bin/python3
"""Does a crowd of HTTP readers slow a running job? azflowd's frames/s with and without them.

    /usr/bin/python3 bench/daemon/http_load_bench.py --master DIR/NAME_master.h5 \\
        --poni NAME.poni --azflowd build/daemon/azflowd [--workers 2] [--clients 200] \\
        [--period 1.0] [--repeats 3] --json out.json

One fresh daemon (own instance, state and runtime folders in a temporary directory, HTTP API on
a free loopback port) integrates the same job (bench/daemon/pipeline_bench.py's: 1D, 1000 bins,
q_nm^-1, Poisson errors) `2 x repeats` times, alternating "quiet" (no HTTP client) and "loaded":
`clients` concurrent HTTP/1.1 clients (one keep-alive connection each), each sending, every
`period` seconds, GET /api/v1/jobs, then GET /api/v1/jobs/ID/frames/latest of the running job
(as an open job page does), then GET /api/v1/stats. The first job (stages start, plan built) is
a warm-up and not counted. frames/s = frames / (enqueue to final state). Reported: the median
frames/s of each kind, their ratio (issue 12's goal: loaded / quiet >= 0.9), the GETs answered
and their latency (p50, p99), and the CPU seconds per job of the azflowd main process (main
loop, HTTP threads, result sink; not the stage processes) and of the clients. The clients run
in this process (Python threads) on the same machine, so on a small machine part of any
slowdown is their own CPU use.
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pipeline_bench as pb  # noqa: E402  (start_azflowd, job_spec, time_job)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--master", required=True)
    p.add_argument("--poni", required=True)
    p.add_argument("--azflowd", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--period", type=float, default=1.0, help="seconds between a client's rounds")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--npt", type=int, default=1000)
    p.add_argument("--json", required=True)
    return p.parse_args()


class Readers:
    """`clients` threads polling the HTTP API until stop(); counts answers and latencies."""

    def __init__(self, port, clients, period, job_id):
        self.port, self.period, self.job_id = port, period, job_id
        self.running = True
        self.lock = threading.Lock()
        self.latencies, self.errors = [], 0
        self.by_path = {}  # path kind -> latencies
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def get(self, conn, path, kind):
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        dt = time.perf_counter() - t0
        with self.lock:
            if response.status in (200, 404):  # 404: no frame integrated yet
                self.latencies.append(dt)
                self.by_path.setdefault(kind, []).append(dt)
            else:
                self.errors += 1

    def loop(self, index):
        time.sleep(self.period * index / max(1, len(self.threads)))  # spread the rounds
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while self.running:
            t0 = time.perf_counter()
            try:
                for path, kind in (("/api/v1/jobs", "jobs"),
                                   (f"/api/v1/jobs/{self.job_id}/frames/latest", "frames/latest"),
                                   ("/api/v1/stats", "stats")):
                    self.get(conn, path, kind)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            time.sleep(max(0.0, self.period - (time.perf_counter() - t0)))
        conn.close()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join()
        return sorted(self.latencies), self.errors, self.by_path


def loaded_job(client, spec, frames, args, port):
    """pb.time_job with the readers started on the job once enqueued; returns seconds, GETs."""
    readers = []
    seconds = pb.time_job(client, spec, frames, " (loaded)", lambda job_id: readers.append(
        Readers(port, args.clients, args.period, job_id)))
    latencies, errors, by_path = readers[0].stop()
    return seconds, latencies, errors, by_path


def own_cpu_s():
    return sum(os.times()[:2])


def percentile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main():
    args = parse_args()
    import h5py
    with h5py.File(args.master, "r") as f:
        frames = sum(f["entry/data"][k].shape[0] for k in f["entry/data"]
                     if k.startswith("data_"))
    work = tempfile.mkdtemp(prefix="azflow-http-bench-")
    instance = f"httpbench{os.getpid()}"
    port = pb.free_port()
    daemon, client = pb.start_azflowd(
        args.azflowd, work, instance, args.workers,
        f"log_level = \"warn\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n")
    quiet, loaded, latencies, errors, by_path = [], [], [], 0, {}
    cpu = {"quiet": [], "loaded": []}  # per job: (azflowd process, this process) CPU seconds

    def measured(kind, run):
        d0, c0 = pb.cpu_seconds(daemon.pid), own_cpu_s()
        value = run()
        cpu[kind].append((pb.cpu_seconds(daemon.pid) - d0, own_cpu_s() - c0))
        return value

    try:
        for _ in range(500):
            if client.call({"verb": "status"}, 200) is not None:
                break
        n = 0

        def spec():
            nonlocal n
            n += 1
            out = os.path.join(work, f"job{n}.h5")
            return pb.job_spec(args.master, args.poni, out, args.npt), out

        s, out = spec()
        pb.time_job(client, s, frames, " (warm-up)")
        os.remove(out)
        for _ in range(args.repeats):
            s, out = spec()
            quiet.append(frames / measured("quiet", lambda: pb.time_job(client, s, frames,
                                                                         " (quiet)")))
            os.remove(out)
            s, out = spec()
            seconds, lat, err, paths = measured("loaded", lambda: loaded_job(client, s, frames, args,
                                                                      port))
            loaded.append(frames / seconds)
            latencies += lat
            errors += err
            for kind, values in paths.items():
                by_path.setdefault(kind, []).extend(values)
            os.remove(out)
    finally:
        client.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    result = dict(
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        load_avg=os.getloadavg(), frames=frames, clients=args.clients, period_s=args.period,
        quiet_fps=quiet, loaded_fps=loaded, quiet_median=statistics.median(quiet),
        loaded_median=statistics.median(loaded),
        ratio=statistics.median(loaded) / statistics.median(quiet), gets=len(latencies),
        get_errors=errors, get_p50_ms=1e3 * percentile(latencies, 0.5),
        get_p99_ms=1e3 * percentile(latencies, 0.99),
        get_ms_by_path={k: dict(n=len(v), p50=round(1e3 * percentile(sorted(v), 0.5), 1),
                                p99=round(1e3 * percentile(sorted(v), 0.99), 1))
                        for k, v in by_path.items()},
        azflowd_cpu_s={k: [round(d, 2) for d, _ in v] for k, v in cpu.items()},
        bench_cpu_s={k: [round(c, 2) for _, c in v] for k, v in cpu.items()})
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{'':28s} {'frames/s (median)':>18s}   runs")
    print(f"{'quiet (no HTTP client)':28s} {result['quiet_median']:18.1f}   "
          + " ".join(f"{x:.1f}" for x in quiet))
    print(f"{f'{args.clients} HTTP clients':28s} {result['loaded_median']:18.1f}   "
          + " ".join(f"{x:.1f}" for x in loaded))
    print(f"ratio loaded / quiet: {result['ratio']:.3f} (goal >= 0.9)")
    print(f"GETs answered {len(latencies)}, errors {errors}, latency p50 "
          f"{result['get_p50_ms']:.1f} ms, p99 {result['get_p99_ms']:.1f} ms")
    for kind, v in result["get_ms_by_path"].items():
        print(f"  GET {kind}: {v['n']} answered, p50 {v['p50']} ms, p99 {v['p99']} ms")
    for kind in ("quiet", "loaded"):
        print(f"CPU s per {kind} job: azflowd main process (its HTTP threads included) "
              f"{statistics.median(d for d, _ in cpu[kind]):.2f}, HTTP clients (this process) "
              f"{statistics.median(c for _, c in cpu[kind]):.2f}")
    print(f"load average {result['load_avg'][0]:.1f}")


if __name__ == "__main__":
    main()
