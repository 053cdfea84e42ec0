#!/usr/bin/python3
"""Federation benchmark (issue 7): one split job run by one azflowd vs two federated azflowd.

    /usr/bin/python3 bench/federation/federation_bench.py --master DIR/NAME_master.h5 \\
        --poni NAME.poni --azflowd build/daemon/azflowd --azflowctl build/ctl/azflowctl \\
        [--repeats 3] [--shard-frames 20] --json out.json

Per repeat, side by side in one run:
- "one": one azflowd pinned to core 0 (taskset -c 0; its stage processes inherit the
  affinity), 1 decompress + 1 integrate worker, runs the job alone.
- "two": azflowd "a" pinned to core 0 (the coordinator, which receives the job) and azflowd "b"
  pinned to core 1 (joined to a over CurveZMQ on loopback TCP), each 1 + 1 workers; the job is
  enqueued on a with nodes = "all".
Every job: 1D, 1000 bins, q_nm^-1, Poisson errors, dummy auto (the EIGER gap value). Each daemon
set runs the job twice; the second ("warm": stage processes up, plans cached) is the steady
state of a resident service, the first ("cold") also pays for starting stages and building
plans. frames/s = frames / (finished_ms - created_ms) from the coordinator's job store.
Coordinator cost: CPU seconds (utime + stime from /proc/<pid>/stat, the azflowd process only,
not its stages) of the coordinator over the warm job. Single-daemon cost per frame c1 = CPU /
frames; with two daemons CPU = c1 * local frames + c_remote * remote frames, so the cost per
remotely integrated frame is c_remote = (CPU - c1 * local) / remote (remote frames counted from
the shards handed to b in the job's events.log and not handed back).
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
import pipeline_bench as pb  # noqa: E402  (free_port, cpu_seconds)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--master", required=True)
    p.add_argument("--poni", required=True)
    p.add_argument("--azflowd", required=True)
    p.add_argument("--azflowctl", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shard-frames", type=int, default=20)
    p.add_argument("--npt", type=int, default=1000)
    p.add_argument("--json", required=True)
    return p.parse_args()


class Daemon:
    """azflowd pinned to one core, own state/runtime folders and instance."""

    def __init__(self, args, base, name, core, trusted, federation):
        self.args, self.name, self.dir = args, name, os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state = os.path.join(self.dir, "state")
        self.instance = f"fb{os.getpid()}{name}"
        self.control = f"ipc://{self.dir}/run/{self.instance}.control"
        config = os.path.join(self.dir, "azflowd.toml")
        with open(config, "w") as f:
            f.write(f"log_level = \"warn\"\nshard_frames = {args.shard_frames}\n"
                    "[rings]\ncompressed_slots = 16\ncompressed_slot_mib = 8\n"
                    "frames_slots = 8\nresults_slots = 64\n")
            if federation is not None:
                f.write(f"[federation]\nnode = \"{name}\"\ntrusted_keys_dir = \"{trusted}\"\n"
                        + federation)
        if federation is not None:
            subprocess.run([args.azflowd, "keygen", "--state-dir", self.state, "--node", name],
                           check=True, stdout=subprocess.DEVNULL)
            shutil.copy(os.path.join(self.state, "curve", name + ".pub"), trusted)
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(core), args.azflowd, "--config", config, "--instance",
             self.instance, "--state-dir", self.state, "--runtime-dir",
             os.path.join(self.dir, "run"), "--workers", "1", "--integrate-workers", "1"])
        for _ in range(500):
            if self.ctl("status", check=False).returncode == 0:
                return
            time.sleep(0.02)
        raise SystemExit(f"azflowd {name} did not start")

    def ctl(self, *words, check=True):
        return subprocess.run([self.args.azflowctl, "--endpoint", self.control, *words],
                              capture_output=True, text=True, check=check)

    def job(self, job_id):
        db = sqlite3.connect(os.path.join(self.state, "jobs.sqlite"))
        row = db.execute("SELECT state, frames_done, created_ms, finished_ms FROM jobs WHERE id=?",
                         (job_id,)).fetchone()
        db.close()
        return dict(state=row[0], frames_done=row[1], seconds=(row[3] - row[2]) / 1000.0)

    def events(self, job_id):
        with open(os.path.join(self.state, "jobs", str(job_id), "events.log")) as f:
            return f.read().splitlines()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def run_job(args, coordinator, out, nodes):
    words = ["enqueue", os.path.abspath(args.master), "--poni", os.path.abspath(args.poni),
             "--npt", str(args.npt), "--unit", "q_nm^-1", "--error-model", "poisson",
             "-o", out]
    if nodes:
        words += ["--nodes", nodes]
    cpu0 = pb.cpu_seconds(coordinator.proc.pid)
    job_id = int(coordinator.ctl(*words).stdout.strip())
    coordinator.ctl("wait", str(job_id), "--interval", "0.05", "--timeout", "600", check=False)
    cpu = pb.cpu_seconds(coordinator.proc.pid) - cpu0
    job = coordinator.job(job_id)
    if job["state"] not in ("succeeded", "warning"):
        raise SystemExit(f"job ended {job}")
    os.remove(out)
    return job_id, job, cpu


def remote_frames(daemon, job_id, frames, shard_frames, peer):
    held = set()
    for line in daemon.events(job_id):
        words = line.split()
        if len(words) >= 4 and words[1] == "shard" and words[3:] == ["to", peer]:
            held.add(int(words[2]))
        elif len(words) >= 5 and words[1] == "shard" and words[3:5] == ["back", "from"]:
            held.discard(int(words[2]))
    return sum(min(shard_frames, frames - s * shard_frames) for s in held)


def one_repeat(args, frames, workdir, r):
    base = os.path.join(workdir, f"r{r}")
    trusted = os.path.join(base, "trusted")
    os.makedirs(trusted, exist_ok=True)
    result = {}
    solo = Daemon(args, base, "solo", 0, trusted, None)
    try:
        for run in ("cold", "warm"):
            _, job, cpu = run_job(args, solo, os.path.join(base, f"solo_{run}.h5"), None)
            result[f"one_{run}_fps"] = frames / job["seconds"]
        result["one_cpu_s"] = cpu
    finally:
        solo.stop()
    port_a, port_b = pb.free_port(), pb.free_port()
    a = Daemon(args, base, "a", 0, trusted, f"peer_endpoint = \"tcp://127.0.0.1:{port_a}\"\n")
    b = Daemon(args, base, "b", 1, trusted,
               f"peer_endpoint = \"tcp://127.0.0.1:{port_b}\"\n"
               f"join = \"a@tcp://127.0.0.1:{port_a}\"\n")
    try:
        for _ in range(500):
            peers = json.loads(a.ctl("--json", "peers").stdout)
            if any(p["state"] == "connected" for p in peers["peers"]):
                break
            time.sleep(0.02)
        for run in ("cold", "warm"):
            job_id, job, cpu = run_job(args, a, os.path.join(base, f"fed_{run}.h5"), "all")
            result[f"two_{run}_fps"] = frames / job["seconds"]
        result["two_cpu_s"] = cpu
        result["remote_frames"] = remote_frames(a, job_id, frames, args.shard_frames, "b")
    finally:
        a.stop()
        b.stop()
    c1 = result["one_cpu_s"] / frames
    local = frames - result["remote_frames"]
    result["coord_cpu_per_frame_ms_one"] = 1000 * c1
    result["coord_cpu_per_remote_frame_ms"] = (
        1000 * (result["two_cpu_s"] - c1 * local) / result["remote_frames"]
        if result["remote_frames"] else float("nan"))
    shutil.rmtree(base, ignore_errors=True)
    return result


def main():
    args = parse_args()
    import h5py
    with h5py.File(args.master, "r") as f:
        frames = int(sum(f["entry/data"][k].shape[0] for k in f["entry/data"]))
    workdir = tempfile.mkdtemp(prefix="azflow-fedbench-")
    runs = []
    try:
        for r in range(args.repeats):
            runs.append(one_repeat(args, frames, workdir, r))
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()),
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    print(f"\n{frames} frames, median of {len(runs)} (frames/s)")
    print(f"| daemons (1+1 workers each, 1 core each) | cold | warm |")
    print(f"|---|---|---|")
    print(f"| one (core 0)        | {med['one_cold_fps']:.1f} | {med['one_warm_fps']:.1f} |")
    print(f"| two (cores 0 and 1) | {med['two_cold_fps']:.1f} | {med['two_warm_fps']:.1f} |")
    print(f"| ratio two / one     | {med['two_cold_fps'] / med['one_cold_fps']:.2f} | "
          f"{med['two_warm_fps'] / med['one_warm_fps']:.2f} |")
    print(f"remote frames (warm, median): {med['remote_frames']:.0f}; coordinator CPU per frame: "
          f"{med['coord_cpu_per_frame_ms_one']:.3f} ms alone, "
          f"{med['coord_cpu_per_remote_frame_ms']:.3f} ms per remotely integrated frame")
    with open(args.json, "w") as f:
        json.dump(dict(frames=frames, repeats=runs, median=med), f, indent=1)


if __name__ == "__main__":
    main()
