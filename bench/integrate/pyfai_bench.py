#!/usr/bin/python3
"""pyFAI side of azflow's integration benchmark: frames/s of pyFAI 0.21 on EIGER 4M frames.

    /usr/bin/python3 bench/integrate/pyfai_bench.py --frames 10 --threads 2 --poni eiger.poni \\
        [--data-h5 NAME_master.h5] --json pyfai.json

Integrates N frames (2167 x 2070 uint32) with pyFAI's integrate1d (integrate1d_ng), methods
("no", "csr", "cython"), ("bbox", "csr", "cython") and ("full", "csr", "cython"), and integrate2d (integrate2d_ng) 360 x npt
("bbox", "csr", "cython"); unit q_nm^-1, solid-angle correction, error model poisson, dummy = the
dtype's maximum (0xFFFFFFFF: detector gaps), npt 1000. One warm-up call per method (it builds the
CSR matrix) is timed apart and excluded. Frames come from a gen_dataset.py master file (read with
h5py before each timed call; reading is not timed) or, without --data-h5, are synthesized in
memory with a fixed seed (a calibrant ring pattern, Poisson noise, the detector's gaps at
0xFFFFFFFF). Frames are reused cyclically when the source has fewer than N + 1. pyFAI's OpenMP threads are set with OMP_NUM_THREADS before pyFAI is imported (the
script re-executes itself when needed).

Prints a table and writes JSON: per method the median, min and max seconds per frame, the median
frames/s, and the plan (warm-up) time.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

SHAPE = (2167, 2070)  # EIGER 4M: rows, cols
GAP = 0xFFFFFFFF


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10, help="frames to integrate per method")
    p.add_argument("--threads", type=int, default=2, help="OpenMP threads for pyFAI")
    p.add_argument("--data-h5", help="gen_dataset.py master file; default: synthesize frames")
    p.add_argument("--poni", required=True, help="PONI file of the geometry (Eiger4M detector)")
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--npt", type=int, default=1000, help="radial bins")
    p.add_argument("--npt-azim", type=int, default=360, help="azimuthal bins of the 2D method")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthesized frames")
    p.add_argument("--methods", default="1d_no,1d_bbox,1d_full,2d_bbox",
                   help="comma-separated subset of 1d_no,1d_bbox,1d_full,2d_bbox")
    args = p.parse_args()
    if args.frames < 1 or args.threads < 1:
        p.error("--frames and --threads must be >= 1")
    return args


def ensure_threads(threads):
    """Re-executes this script with OMP_NUM_THREADS=threads unless it is already set so."""
    if os.environ.get("OMP_NUM_THREADS") == str(threads):
        return
    if "pyFAI" in sys.modules:
        raise RuntimeError("pyFAI imported before OMP_NUM_THREADS was set")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


class H5Frames:
    """Frames of a gen_dataset.py series: /entry/data/data_NNNNNN, each (n, rows, cols)."""

    def __init__(self, path):
        import h5py
        self.file = h5py.File(path, "r")
        group = self.file["/entry/data"]
        self.datasets = [group[k] for k in sorted(group) if k.startswith("data_")]
        self.count = sum(d.shape[0] for d in self.datasets)
        self.dtype = self.datasets[0].dtype
        self.shape = self.datasets[0].shape[1:]

    def __getitem__(self, index):
        index %= self.count
        for d in self.datasets:
            if index < d.shape[0]:
                return d[index]
            index -= d.shape[0]
        raise IndexError(index)


class SyntheticFrames:
    """Fixed-seed EIGER 4M frames: CeO2 rings + background, Poisson noise, gaps at 0xFFFFFFFF.

    A handful of distinct noisy frames is made once and cycled, so that making them stays cheap.
    """

    def __init__(self, ai, seed, distinct=4):
        import numpy
        import pyFAI.calibrant
        calibrant = pyFAI.calibrant.get_calibrant("CeO2")
        calibrant.wavelength = ai.wavelength
        rings = calibrant.fake_calibration_image(ai, shape=SHAPE, W=1e-5)
        expected = 200.0 * rings + 5.0
        gaps = ai.detector.mask
        rng = numpy.random.default_rng(seed)
        self.frames = []
        for _ in range(distinct):
            frame = rng.poisson(expected).astype(numpy.uint32)
            if gaps is not None:
                frame[gaps.astype(bool)] = GAP
            self.frames.append(frame)
        self.count = len(self.frames)
        self.dtype = numpy.dtype(numpy.uint32)
        self.shape = SHAPE

    def __getitem__(self, index):
        return self.frames[index % self.count]


def integrate_call(ai, name, npt, npt_azim, dummy):
    """A function frame -> result for one benchmark method."""
    common = dict(unit="q_nm^-1", correctSolidAngle=True, error_model="poisson", dummy=dummy)
    if name == "1d_no":
        return lambda frame: ai.integrate1d(frame, npt, method=("no", "csr", "cython"), **common)
    if name == "1d_bbox":
        return lambda frame: ai.integrate1d(frame, npt, method=("bbox", "csr", "cython"), **common)
    if name == "1d_full":
        return lambda frame: ai.integrate1d(frame, npt, method=("full", "csr", "cython"), **common)
    if name == "2d_bbox":
        return lambda frame: ai.integrate2d(frame, npt, npt_azim, method=("bbox", "csr", "cython"),
                                            **common)
    raise ValueError(f"unknown method {name!r}")


def bench_method(poni, frames, name, args, dummy):
    import pyFAI
    ai = pyFAI.load(poni)  # a fresh integrator: its own engines, plan built in the warm-up
    call = integrate_call(ai, name, args.npt, args.npt_azim, dummy)
    t0 = time.perf_counter()
    call(frames[0])
    plan_s = time.perf_counter() - t0
    times, read_s = [], 0.0
    for i in range(args.frames):
        t0 = time.perf_counter()
        frame = frames[i + 1]
        t1 = time.perf_counter()
        call(frame)
        t2 = time.perf_counter()
        read_s += t1 - t0
        times.append(t2 - t1)
    median = statistics.median(times)
    return dict(method=name, frames=args.frames, warmup_plan_s=plan_s, median_s=median,
                min_s=min(times), max_s=max(times), mean_s=statistics.fmean(times),
                median_fps=1.0 / median, read_s_total=read_s)


def main():
    args = parse_args()
    ensure_threads(args.threads)
    import numpy
    import pyFAI

    ai = pyFAI.load(args.poni)
    if args.data_h5:
        frames = H5Frames(args.data_h5)
        source = os.path.abspath(args.data_h5)
    else:
        frames = SyntheticFrames(ai, args.seed)
        source = f"synthetic (seed {args.seed})"
    if tuple(frames.shape) != tuple(ai.detector.shape or SHAPE):
        raise SystemExit(f"frames are {frames.shape}, detector is {ai.detector.shape}")
    dummy = float(numpy.iinfo(frames.dtype).max) if frames.dtype.kind == "u" else None

    results = []
    for name in args.methods.split(","):
        r = bench_method(args.poni, frames, name.strip(), args, dummy)
        results.append(r)
        print(f"  {r['method']:8s} plan {r['warmup_plan_s']:7.2f} s   median "
              f"{r['median_s'] * 1e3:8.2f} ms/frame   {r['median_fps']:8.2f} frames/s", flush=True)

    report = dict(tool="pyFAI", pyfai_version=pyFAI.version, numpy_version=numpy.__version__,
                  threads=args.threads, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                  frames=args.frames, source=source, poni=os.path.abspath(args.poni),
                  shape=list(frames.shape), dtype=str(frames.dtype), npt=args.npt,
                  npt_azim=args.npt_azim, unit="q_nm^-1", error_model="poisson",
                  correct_solid_angle=True, dummy=dummy, host=platform.node(),
                  cpu_count=os.cpu_count(), methods=results)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)

    print(f"\npyFAI {pyFAI.version}, {args.threads} thread(s), {args.frames} frames, {source}")
    print(f"{'method':10s} {'plan s':>8s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s} "
          f"{'frames/s':>9s}")
    for r in results:
        print(f"{r['method']:10s} {r['warmup_plan_s']:8.2f} {r['median_s'] * 1e3:10.2f} "
              f"{r['min_s'] * 1e3:8.2f} {r['max_s'] * 1e3:8.2f} {r['median_fps']:9.2f}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
