#!/usr/bin/python3
"""azflow-detector-sim as a Stream V2 client sees it: pyzmq PULL + cbor2, nothing of azflow.

Serves the committed EIGER fixture (bitshuffle-LZ4 uint32, two linked data files) and two series
written here with h5py (LZ4 uint16; uncompressed uint16), and checks every message against
DECTRIS' Stream V2 documentation and the HDF5 files: self-describe tag first; start fields from
the master's metadata and its pixel_mask; one image per frame, image_id in order, each carrying
the frame's stored chunk byte for byte (h5py read_direct_chunk) in tag 56500, or the frame's
pixels as a raw typed array; end with the series ids; --series and --rate honoured.
Usage: detector_sim_test.py --sim BUILD/sim/azflow-detector-sim --fixtures tests/source/fixtures
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time

import cbor2
import h5py
import numpy as np
import zmq

TYPED = {"uint8": 64, "uint16": 69, "uint32": 70, "int32": 78, "float32": 85}
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


def write_series(folder, name, dtype, compression, opts, frames=4, rows=29, cols=41):
    """An EIGER-layout series: NAME_master.h5 linking NAME_data_000001.h5 (h5py, libhdf5)."""
    rng = np.random.default_rng(5)
    data = rng.poisson(40, size=(frames, rows, cols)).astype(dtype)
    data[:, 3, :] = np.iinfo(dtype).max
    data_name = name + "_data_000001.h5"
    with h5py.File(os.path.join(folder, data_name), "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(1, rows, cols),
                         compression=compression, compression_opts=opts)
    mask = np.zeros((rows, cols), np.uint32)
    mask[3, :] = 1
    master = os.path.join(folder, name + "_master.h5")
    with h5py.File(master, "w") as f:
        f["entry/data/data_000001"] = h5py.ExternalLink(data_name, "entry/data/data")
        det = f.create_group("entry/instrument/detector")
        det["beam_center_x"] = 20.5
        det["beam_center_y"] = 14.25
        det["detector_distance"] = 0.2
        det["x_pixel_size"] = 7.5e-5
        det["y_pixel_size"] = 7.5e-5
        det["detectorSpecific/pixel_mask"] = mask
        det["detectorSpecific/nimages"] = frames
        det["detectorSpecific/ntrigger"] = 1
        f["entry/instrument/beam/incident_wavelength"] = 0.8
        f["entry/instrument/beam/incident_wavelength"].attrs["units"] = "angstrom"
    return master


def frames_of(master):
    """[(stored chunk bytes or None, decoded frame)] over the master's data links, in order."""
    out = []
    with h5py.File(master) as f:
        for key in sorted(f["entry/data"]):
            ds = f["entry/data"][key]
            for i in range(ds.shape[0]):
                chunk = None
                if ds.compression is not None or ds._filters:
                    chunk = bytes(ds.id.read_direct_chunk((i, 0, 0))[1])
                out.append((chunk, ds[i]))
        det = f["entry/instrument/detector"]
        scale = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "pixel": 1.0}  # NeXus units attribute
        meta = {k: float(det[k][()]) * scale[det[k].attrs.get("units", "m")]
                for k in ("beam_center_x", "beam_center_y", "detector_distance", "x_pixel_size",
                          "y_pixel_size")}
        meta["mask"] = det["detectorSpecific/pixel_mask"][()]
        meta["wavelength"] = float(f["entry/instrument/beam/incident_wavelength"][()])
    return out, meta


def load(raw):
    """One CBOR item that must fill the whole message (cbor2.loads ignores trailing bytes)."""
    fp = io.BytesIO(raw)
    item = cbor2.CBORDecoder(fp).decode()
    check(fp.tell() == len(raw), "%d trailing bytes after the CBOR item" % (len(raw) - fp.tell()))
    return item


def receive(endpoint, count, timeout_s=20):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.connect(endpoint)
    msgs = []
    deadline = time.monotonic() + timeout_s
    while len(msgs) < count and time.monotonic() < deadline:
        if sock.poll(200):
            msgs.append((time.monotonic(), sock.recv()))
    sock.close(linger=0)
    return msgs


def run_case(sim, master, algorithm, series=1, rate=0):
    frames, meta = frames_of(master)
    n = len(frames)
    proc = subprocess.Popen([sim, master, "--endpoint", "tcp://127.0.0.1:*", "--series",
                             str(series), "--rate", str(rate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    check(line.startswith("azflow-detector-sim: bound tcp://"), "bound line: " + line)
    endpoint = line.split()[-1]
    msgs = receive(endpoint, series * (n + 2))
    rc = proc.wait(timeout=20)
    check(rc == 0, "%s: exit code %d: %s" % (master, rc, proc.stderr.read()))
    check(len(msgs) == series * (n + 2), "%s: %d messages" % (master, len(msgs)))
    name = os.path.basename(master)
    for s in range(series):
        part = msgs[s * (n + 2):(s + 1) * (n + 2)]
        if len(part) != n + 2:
            return
        for _, raw in part:
            check(raw[:3] == b"\xd9\xd9\xf7", name + ": no self-describe tag 55799")
        start = load(part[0][1])
        check(start["type"] == "start", name + ": first message " + str(start.get("type")))
        sid, uid = start["series_id"], start["series_unique_id"]
        check(sid == 1 + s, name + ": series_id %s" % sid)
        first = frames[0][1]
        check(start["image_size_x"] == first.shape[1] and start["image_size_y"] == first.shape[0],
              name + ": image size")
        check(start["image_dtype"] == first.dtype.name, name + ": dtype " + start["image_dtype"])
        check(start["number_of_images"] == n, name + ": number_of_images")
        check(start["channels"] == ["threshold_1"], name + ": channels")
        for key, field in (("beam_center_x", "beam_center_x"), ("beam_center_y", "beam_center_y"),
                           ("detector_distance", "detector_distance"),
                           ("x_pixel_size", "pixel_size_x"), ("y_pixel_size", "pixel_size_y")):
            check(abs(start[field] - meta[key]) <= 1e-6 * abs(meta[key]), name + ": " + field)
        check(abs(start["incident_wavelength"] - meta["wavelength"]) < 1e-6, name + ": wavelength")
        m = start["pixel_mask"]["threshold_1"]
        check(m.tag == 40 and m.value[0] == list(meta["mask"].shape) and m.value[1].tag == 70,
              name + ": pixel_mask layout")
        check(np.array_equal(np.frombuffer(m.value[1].value, "<u4").reshape(meta["mask"].shape),
                             meta["mask"]), name + ": pixel_mask values")
        for i, (_, raw) in enumerate(part[1:-1]):
            img = load(raw)
            chunk, frame = frames[i]
            check(img["type"] == "image" and img["image_id"] == i, name + ": image_id %d" % i)
            check(img["series_id"] == sid and img["series_unique_id"] == uid,
                  name + ": image series ids")
            arr = img["data"]["threshold_1"]
            check(arr.tag == 40 and arr.value[0] == list(frame.shape), name + ": image dims")
            typed = arr.value[1]
            check(typed.tag == TYPED[frame.dtype.name], name + ": typed array tag %d" % typed.tag)
            if algorithm is None:
                check(typed.value == frame.astype(frame.dtype.newbyteorder("<")).tobytes(),
                      name + ": raw pixels of image %d" % i)
            else:
                comp = typed.value
                check(comp.tag == 56500 and comp.value[0] == algorithm,
                      name + ": compression tag")
                modifier = frame.dtype.itemsize if algorithm == "bslz4" else 0
                check(comp.value[1] == modifier, name + ": compression modifier")
                check(comp.value[2] == chunk, name + ": image %d is not the stored chunk" % i)
        end = load(part[-1][1])
        check(end == {"type": "end", "series_id": sid, "series_unique_id": uid}, name + ": end")
    if rate > 0:
        images = [t for t, raw in msgs if load(raw)["type"] == "image"]
        spread = images[-1] - images[0]
        expected = (len(images) - 1) / rate
        check(spread >= 0.8 * expected, "%s: %d images in %.3f s at --rate %g" %
              (name, len(images), spread, rate))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sim", required=True)
    p.add_argument("--fixtures", required=True)
    args = p.parse_args()
    run_case(args.sim, os.path.join(args.fixtures, "eiger_master.h5"), "bslz4", series=2, rate=50)
    with tempfile.TemporaryDirectory() as tmp:
        run_case(args.sim, write_series(tmp, "lz4u16", "uint16", 32004, (0,)), "lz4")
        run_case(args.sim, write_series(tmp, "rawu16", "uint16", None, None), None)
    if FAILURES:
        print("%d failure(s)" % len(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("detector_sim_test: OK")


if __name__ == "__main__":
    main()
