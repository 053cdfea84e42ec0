#!/usr/bin/python3
"""Checks an azflow NeXus output against pyFAI 0.21 itself on a few frames (tests/ops).

  check_pyfai.py MASTER PONI OUTPUT --npt N --unit UNIT [--frames 0,50,99]

Follows the output's NeXus @default chain (root -> NXentry -> NXdata, @signal, @axes), reads the
same frames from MASTER (/entry/data/data, Debian's HDF5 filter plugins), integrates each with
pyFAI's AzimuthalIntegrator.integrate1d (method no-split CSR, solid-angle correction, the master's
pixel_mask, dummy = the dtype's maximum as float32: azflow's defaults) and compares the radial
axis and I on bins holding more than 1% of the frame's maximum. Exit 0 PASS, 1 FAIL.
"""
import argparse
import sys

import h5py
import numpy as np
import pyFAI


def nexus_signal(path):
    with h5py.File(path, "r") as f:
        entry = f[f.attrs["default"]]
        data = entry[entry.attrs["default"]]
        signal = data[data.attrs["signal"]][()]
        axes = data.attrs["axes"]
        axis = axes[-1] if not isinstance(axes, str) else axes
        if isinstance(axis, bytes):
            axis = axis.decode()
        return signal, data[axis][()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("master")
    p.add_argument("poni")
    p.add_argument("output")
    p.add_argument("--npt", type=int, required=True)
    p.add_argument("--unit", required=True)
    p.add_argument("--frames", default="0,50,99")
    p.add_argument("--rtol", type=float, default=1e-3)
    a = p.parse_args()
    signal, radial = nexus_signal(a.output)
    ai = pyFAI.load(a.poni)
    with h5py.File(a.master, "r") as f:
        data = f["/entry/data/data"] if "/entry/data/data" in f else f["/entry/data/data_000001"]
        mask = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()] != 0
        frames = [int(x) for x in a.frames.split(",")]
        if signal.shape[0] != data.shape[0]:
            print(f"FAIL: output has {signal.shape[0]} frames, the series {data.shape[0]}")
            return 1
        dummy = float(np.float32(np.iinfo(data.dtype).max))
        worst = 0.0
        for k in frames:
            r = ai.integrate1d(data[k], a.npt, unit=a.unit, method=("no", "csr", "cython"), correctSolidAngle=True,
                               mask=mask, dummy=dummy)
            if not np.allclose(r.radial, radial, rtol=1e-5, atol=1e-6):
                print(f"FAIL: frame {k}: radial axis differs from pyFAI's")
                return 1
            ref = np.where(r.intensity == dummy, 0, r.intensity)
            meaningful = ref > 0.01 * ref.max()
            err = np.abs(signal[k][meaningful] - ref[meaningful]) / np.abs(ref[meaningful])
            worst = max(worst, float(err.max()))
    verdict = "PASS" if worst <= a.rtol else "FAIL"
    print(f"{verdict}: frames {a.frames}: max relative error of I {worst:.2e} (rtol {a.rtol})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
