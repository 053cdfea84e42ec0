#!/usr/bin/python3
"""End-to-end test of `azflow integrate --format nxazint | xy | xy-frames` (run by ctest).

Runs the real azflow binary on the committed fixture series tests/cli/fixtures/pilatus_master.h5
and checks, with h5py and numpy (Debian's /usr/bin/python3):
  - nxazint 1D and 2D: the NXazint1d / NXazint2d structure (NeXus v2025.11: definition, the
    *_applied flags, reduction NXprocess with input NXparameters, NXdata I, I_errors,
    radial_axis(_edges), azimuthal_axis(_edges), norm) and the values against pyFAI 0.21's
    results in tests/cli/fixtures/pilatus_ref.h5 (made by tests/cli/fixtures/make_fixtures.py);
  - xy-frames and xy: numpy.loadtxt reads the files, and their header lines and numbers match
    pyFAI's own save1D output of the same integration (tests/reduce/fixtures/*.xy, made by
    tests/reduce/fixtures/make_xy_reference.py) at 1e-5 relative;
  - --empty: bins without pixels hold the given value (pyFAI fills them with its dummy): the 2D
    cake of pilatus_ref.h5 and a 1D range beyond the detector (pilatus_q_empty_frame1.xy);
  - bad --format values exit 2 with a message naming --format.
Usage: output_formats_test.py AZFLOW_BINARY CLI_FIXTURES_DIR XY_FIXTURES_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

AZFLOW, CLI_FIX, XY_FIX = sys.argv[1:4]
MASTER = os.path.join(CLI_FIX, "pilatus_master.h5")
PONI = os.path.join(CLI_FIX, "pilatus.poni")
REF = os.path.join(CLI_FIX, "pilatus_ref.h5")
Q_OPTIONS = ["--npt", "200", "--unit", "q_nm^-1", "--error-model", "poisson"]
CAKE_OPTIONS = ["--npt-rad", "100", "--npt-azim", "36", "--unit", "q_A^-1"]
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what)


def integrate(out, *options):
    cmd = [AZFLOW, "integrate", MASTER, "--poni", PONI, "--quiet", "-o", out, *options]
    return subprocess.run(cmd, capture_output=True, text=True)


def close(actual, expected, rtol, what):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    ok = actual.shape == expected.shape and np.allclose(actual, expected, rtol=rtol, atol=0)
    worst = np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-300)) \
        if actual.shape == expected.shape else "shape " + str(actual.shape)
    check(ok, f"{what}: not within {rtol} relative (worst {worst})")


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def check_nxazint(path, case, two_d):
    with h5py.File(REF, "r") as ref_file, h5py.File(path, "r") as f:
        ref = ref_file["entry/" + case]
        count = ref["count"][()]
        entry = f["entry"]
        check(text(f.attrs["default"]) == "entry", "/@default")
        check(text(entry.attrs["NX_class"]) == "NXentry", "entry NX_class")
        check(text(entry.attrs["default"]) == "data", "entry/@default")
        check(text(entry["definition"][()]) == ("NXazint2d" if two_d else "NXazint1d"),
              "definition")
        flags = dict(solid_angle_applied=1, polarization_applied=0, normalization_applied=1,
                     monitor_applied=0, mask_applied=1, dark_applied=0, flat_applied=0)
        for name, value in flags.items():
            check(int(entry[name][()]) == value, f"{name} = {value}")
        inst = entry["instrument"]
        check(text(inst.attrs["NX_class"]) == "NXinstrument", "instrument NX_class")
        for name in ("name",):
            check(name in inst, "instrument/" + name)
        check(text(inst["source/probe"][()]) == "x-ray", "source/probe")
        close(inst["monochromator/wavelength"][()], 1.0, 1e-12, "wavelength (angstrom)")
        check(text(inst["monochromator/wavelength"].attrs["units"]) == "angstrom", "wl units")
        close(inst["monochromator/energy"][()], 12.398419843320026, 1e-12, "energy (keV)")
        red = entry["reduction"]
        check(text(red.attrs["NX_class"]) == "NXprocess", "reduction NX_class")
        for name in ("program", "version", "date", "reference", "note"):
            check(name in red, "reduction/" + name)
        check(text(red["program"][()]) == "azflow", "program")
        inp = red["input"]
        check(text(inp.attrs["NX_class"]) == "NXparameters", "input NX_class")
        check(text(inp["unit"][()]) == ("q_A^-1" if two_d else "q_nm^-1"), "input/unit")
        check(int(inp["npt_rad"][()]) == (100 if two_d else 200), "input/npt_rad")
        check(text(inp["format"][()]) == "nxazint", "input/format")
        check(int(red["frames_written"][()]) == 3, "frames_written")
        data = entry["data"]
        check(text(data.attrs["NX_class"]) == "NXdata", "data NX_class")
        check(text(data.attrs["signal"]) == "I", "@signal")
        axes = [text(a) for a in data.attrs["axes"]]
        expected_axes = [".", "azimuthal_axis", "radial_axis"] if two_d else [".", "radial_axis"]
        check(axes == expected_axes, f"@axes {axes}")
        check(text(data.attrs["interpretation"]) == ("image" if two_d else "spectrum"),
              "@interpretation")
        I = data["I"][()]
        check(text(data["I"].attrs["long_name"]) == "intensity", "I long_name")
        check(text(data["I"].attrs["units"]) == "arbitrary units", "I units")
        ref_I = ref["I"][()]
        check(I.shape == ref_I.shape, f"I shape {I.shape} vs {ref_I.shape}")
        valid = count > 0
        close(I[valid], ref_I[valid], 1e-5, "I vs pyFAI")
        if two_d:
            check("I_errors" not in data, "no I_errors without an error model")
        else:
            close(data["I_errors"][()][valid], ref["sigma"][()][valid], 1e-5, "I_errors vs pyFAI")
        radial = data["radial_axis"]
        close(radial[()], ref["radial"][()], 1e-6, "radial_axis vs pyFAI")
        check(text(radial.attrs["long_name"]) == "q", "radial_axis long_name")
        check(text(radial.attrs["units"]) == ("1/angstrom" if two_d else "1/nm"), "radial units")
        edges = data["radial_axis_edges"][()]
        check(edges.shape == (radial.shape[0] + 1,), "radial_axis_edges shape")
        check(np.all(np.diff(edges) > 0), "radial_axis_edges increasing")
        norm = data["norm"][()]
        check(norm.shape == I.shape[1:], f"norm shape {norm.shape}")
        check(np.all(norm[valid[0]] > 0), "norm > 0 on bins with pixels")
        # pyFAI fills a bin without pixels with 0 or, given a dummy, the dummy (0xFFFFFFFF)
        empty = ref_I[:, norm == 0]
        check(np.all((empty == 0) | (empty == np.float32(0xFFFFFFFF))),
              "bins with norm 0 are empty in pyFAI too")
        if two_d:
            azim = data["azimuthal_axis"]
            close(azim[()], ref["azimuthal"][()], 1e-6, "azimuthal_axis vs pyFAI")
            check(text(azim.attrs["units"]) == "degree", "azimuthal units")
            check(data["azimuthal_axis_edges"].shape == (37,), "azimuthal_axis_edges shape")


def header(path):
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line.rstrip("\n"))
    return lines


def check_xy(path, ref_path, skip_keys):
    ours, theirs = header(path), header(ref_path)
    check(len(ours) == len(theirs), f"{path}: {len(ours)} header lines, pyFAI {len(theirs)}")
    for a, b in zip(ours, theirs):
        if a.startswith("# -->"):
            check(a == "# --> " + path, f"file line {a!r}")
        elif a.startswith("# Detector "):
            check(a.split("PixelSize=")[1] == b.split("PixelSize=")[1], f"detector {a!r} {b!r}")
        elif not any(a.startswith("# " + k) for k in skip_keys):
            check(a == b, f"header line {a!r} != pyFAI {b!r}")
    data, ref = np.loadtxt(path), np.loadtxt(ref_path)
    check(data.shape == ref.shape == (200, 3), f"loadtxt shape {data.shape} vs {ref.shape}")
    if data.shape == ref.shape:
        nonzero = ref[:, 1] != 0
        close(data[:, 0], ref[:, 0], 1e-5, "xy radial")
        close(data[nonzero, 1:], ref[nonzero, 1:], 1e-5, "xy I, sigma")
        check(np.all(data[~nonzero, 1:] == 0), "empty bins 0")


def check_empty(work):
    dummy = np.float32(0xFFFFFFFF)
    with h5py.File(REF, "r") as ref:
        ref_I = ref["entry/cake/I"][()]
    no_pixels_cake = None
    out = os.path.join(work, "cake_empty.h5")
    r = integrate(out, "--empty", "4294967295", *CAKE_OPTIONS)
    check(r.returncode == 0, "--empty run: " + r.stdout + r.stderr)
    if r.returncode == 0:
        with h5py.File(out, "r") as f:
            I = f["entry/integrate/I"][()]
            # bins without pixels in azflow (every frame alike: no dummy pixel in this series)
            no_pixels = f["entry/sum/sum_count"][()] == 0
            check(int(no_pixels.sum()) > 100, "the cake has bins without pixels")
            check(np.all(I[:, no_pixels] == dummy), "they hold the --empty value")
            check(np.all(ref_I[:, no_pixels] == dummy), "pyFAI has its dummy there too")
            # pyFAI 0.21.3's legacy 2D engine also gives the dummy in some bins that have
            # pixels (its count is 0 there too); compare the others
            valid = ref_I != dummy
            close(I[valid], ref_I[valid], 1e-5, "cake I with --empty vs pyFAI")
            check(float(f["entry/process/parameters/empty"][()]) == float(dummy),
                  "empty recorded in the parameters")
            no_pixels_cake = no_pixels
    out = os.path.join(work, "cake_zero.h5")
    r = integrate(out, *CAKE_OPTIONS)
    if r.returncode == 0 and no_pixels_cake is not None:
        with h5py.File(out, "r") as f:
            check(np.all(f["entry/integrate/I"][()][:, no_pixels_cake] == 0), "default empty 0")
    out = os.path.join(work, "range.xy")
    r = integrate(out, "--format", "xy-frames", "--frames", "1", "--radial-range", "0", "40",
                  "--empty", "4294967295", *Q_OPTIONS)
    check(r.returncode == 0, "--empty xy run: " + r.stdout + r.stderr)
    if r.returncode == 0:
        ours = np.loadtxt(os.path.join(work, "range_00001.xy"))
        theirs = np.loadtxt(os.path.join(XY_FIX, "pilatus_q_empty_frame1.xy"))
        check(int(np.sum(theirs[:, 1] == 4.294967e9)) > 10, "the 1D range has empty bins")
        close(ours, theirs, 1e-5, "1D xy with --empty = dummy vs pyFAI save1D, every bin")


def main():
    work = tempfile.mkdtemp(prefix="azflow_formats_")
    try:
        check_empty(work)
        out = os.path.join(work, "azint1d.h5")
        r = integrate(out, "--format", "nxazint", *Q_OPTIONS)
        check(r.returncode == 0, "nxazint 1D run: " + r.stdout + r.stderr)
        if r.returncode == 0:
            check_nxazint(out, "integrate", False)
        out = os.path.join(work, "azint2d.h5")
        r = integrate(out, "--format", "nxazint", *CAKE_OPTIONS)
        check(r.returncode == 0, "nxazint 2D run: " + r.stdout + r.stderr)
        if r.returncode == 0:
            check_nxazint(out, "cake", True)

        out = os.path.join(work, "frames.xy")
        r = integrate(out, "--format", "xy-frames", *Q_OPTIONS)
        check(r.returncode == 0, "xy-frames run: " + r.stdout + r.stderr)
        names = sorted(os.listdir(work))
        for i in range(3):
            check(f"frames_{i:05d}.xy" in names, f"frames_{i:05d}.xy written ({names})")
        check(not os.path.exists(out), "xy-frames writes no file at the output path itself")
        if r.returncode == 0:
            check_xy(os.path.join(work, "frames_00001.xy"),
                     os.path.join(XY_FIX, "pilatus_q_frame1.xy"), [])
            with h5py.File(REF, "r") as ref:
                data = np.loadtxt(os.path.join(work, "frames_00002.xy"))
                ok = ref["entry/integrate/count"][2] > 0
                close(data[ok, 1], ref["entry/integrate/I"][2][ok], 1e-5, "frame 2 I vs pyFAI")
        r = integrate(out, "--format", "xy-frames", *Q_OPTIONS)
        check(r.returncode == 2 and "already exists" in r.stderr, "existing frame files refused")

        out = os.path.join(work, "mean.xy")
        r = integrate(out, "--format", "xy", *Q_OPTIONS)
        check(r.returncode == 0, "xy run: " + r.stdout + r.stderr)
        if r.returncode == 0:
            check_xy(out, os.path.join(XY_FIX, "pilatus_q_mean.xy"), ["Normalization factor"])

        r = integrate(os.path.join(work, "bad.h5"), "--format", "hdf5")
        check(r.returncode == 2 and "--format" in r.stderr and "nxazint" in r.stderr,
              "unknown --format refused: " + r.stderr)
        r = integrate(os.path.join(work, "bad.xy"), "--format", "xy", *CAKE_OPTIONS)
        check(r.returncode == 2 and "--format" in r.stderr and "1D" in r.stderr,
              "2D xy refused: " + r.stderr)
    finally:
        shutil.rmtree(work)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all output-format checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
