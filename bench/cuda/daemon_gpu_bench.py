#!/usr/bin/python3
"""azflowd end to end with N integrate workers per GPU (issue 6).

    /usr/bin/python3 bench/cuda/daemon_gpu_bench.py --master DIR/NAME_master.h5 --poni NAME.poni \\
        --azflowd BUILD/daemon/azflowd [--workers-per-gpu 1 2 4 8] [--decompress-workers N] \\
        --json out.json

For each workers_per_gpu value: a fresh daemon ([gpu] workers_per_gpu = W, gpus = "all";
`decompress-workers` decompress processes, default the CPU count), two jobs of the same settings
as bench/daemon (1D, 1000 bins, q_nm^-1, no splitting, solid angle, Poisson, dummy 0xFFFFFFFF):
"cold" (starts the stages, builds and uploads the plan) and "warm" (the steady state). Time from
enqueue to the job being final. Records the devices the integrate stages reported, so a run that
fell back to the CPU shows it.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from pipeline_bench import Client, job_spec, time_job  # noqa: E402

RINGS = "compressed_slots = 32\ncompressed_slot_mib = 8\nframes_slots = 32\nresults_slots = 64"


def run(args, per_gpu, frames, workdir):
    base = os.path.join(workdir, f"w{per_gpu}")
    os.makedirs(base, exist_ok=True)
    config = os.path.join(base, "azflowd.toml")
    with open(config, "w") as f:
        f.write(f"log_level = \"info\"\n[rings]\n{RINGS}\n[gpu]\nworkers_per_gpu = {per_gpu}\n")
    instance = f"gpubench{os.getpid()}_{per_gpu}"
    log = open(os.path.join(base, "azflowd.log"), "w")
    daemon = subprocess.Popen([args.azflowd, "--config", config, "--instance", instance,
                               "--state-dir", os.path.join(base, "state"),
                               "--runtime-dir", os.path.join(base, "run"),
                               "--workers", str(args.decompress_workers)], stderr=log)
    client = Client(f"ipc://{base}/run/{instance}.control")
    try:
        for _ in range(500):
            if client.call({"verb": "status"}, 200) is not None:
                break
        times = []
        for run_name in ("cold", "warm"):
            out = os.path.join(base, f"{run_name}.h5")
            times.append(time_job(client, job_spec(args.master, args.poni, out, 1000), frames,
                                  f"; see {base}/azflowd.log"))
            os.remove(out)
        status = client.call({"verb": "status"})["result"]["daemon"]
    finally:
        client.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
    devices = sorted({s.get("device", "?") for s in status["stages"] if s["role"] == "integrate"})
    workers = sum(1 for s in status["stages"] if s["role"] == "integrate")
    with open(os.path.join(base, "azflowd.log")) as f:
        backend = next((line.split("] ", 1)[-1].strip() for line in f
                        if "integrate backend:" in line), "?")
    shutil.rmtree(base, ignore_errors=True)
    return dict(workers_per_gpu=per_gpu, integrate_workers=workers, devices=devices,
                backend=backend, cold_s=times[0], cold_fps=frames / times[0], warm_s=times[1],
                warm_fps=frames / times[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--master", required=True)
    p.add_argument("--poni", required=True)
    p.add_argument("--azflowd", required=True)
    p.add_argument("--frames", type=int, required=True, help="frames in the dataset")
    p.add_argument("--workers-per-gpu", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--decompress-workers", type=int, default=os.cpu_count())
    p.add_argument("--json", required=True)
    args = p.parse_args()
    workdir = tempfile.mkdtemp(prefix="azflow-gpu-bench-")
    results = []
    try:
        for w in args.workers_per_gpu:
            r = run(args, w, args.frames, workdir)
            print(f"workers_per_gpu {w}: {r['integrate_workers']} integrate workers on "
                  f"{','.join(r['devices'])}: cold {r['cold_fps']:.1f} f/s, warm "
                  f"{r['warm_fps']:.1f} f/s", flush=True)
            results.append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(args.json, "w") as f:
        json.dump(dict(frames=args.frames, decompress_workers=args.decompress_workers,
                       runs=results), f, indent=2)


if __name__ == "__main__":
    main()
