#!/usr/bin/python3
"""int16, int64 and float64 frames over a live stream, encoded by libraries azflow did not write.

For each dtype, three 195 x 487 frames (the Pilatus fixture's detector) are written with h5py to
a plain HDF5 file and integrated there with `azflow integrate`; the same frames are then sent by
pyzmq as DECTRIS Stream V2 messages built with cbor2 (RFC 8746 typed-array tags 77 int16 LE,
79 int64 LE, 86 float64 LE; raw, or inside the DECTRIS compression tag 56500 as an HDF5
bitshuffle-LZ4 (32008) or LZ4 (32004) chunk written by libhdf5's filter plugins), and as legacy
stream v1 multipart messages (type "int16"/"int64"/"float64", encodings "<" and "bs16-lz4<"),
received by `azflow integrate --stream`. Every row of I and sigma must equal the file's.
The int64 frames hold values beyond 2**32 and the int16 ones negative values, so a parser
reading the wrong width or sign gives other intensities.
Usage: stream_dtypes_test.py --azflow BUILD/cli/azflow --poni tests/cli/fixtures/pilatus.poni
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import cbor2
import h5py
import numpy as np
import zmq

ROWS, COLS, FRAMES = 195, 487, 3
TYPED = {"int16": 77, "int64": 79, "float64": 86}
SETTINGS = ["--npt", "150", "--error-model", "poisson", "--threads", "1", "--quiet"]
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


def frames_of(dtype):
    rng = np.random.default_rng({"int16": 1, "int64": 2, "float64": 3}[dtype])
    f = rng.poisson(lam=rng.uniform(5, 500, size=(FRAMES, ROWS, COLS))).astype(np.float64)
    if dtype == "int16":
        f[:, 10, :] -= 20  # negative values in one row
    if dtype == "int64":
        f[:, 100, 200:210] = 2.0**40 + 12345  # beyond 32 bits
    if dtype == "float64":
        f += rng.uniform(0, 1, size=f.shape)
    return f.astype(dtype)


def hdf5_chunk(frame, filter_id, opts):
    """One chunk of `frame` as libhdf5 stores it through filter `filter_id`."""
    with h5py.File("mem.h5", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset("d", data=frame[np.newaxis], chunks=(1,) + frame.shape,
                              compression=filter_id, compression_opts=opts)
        mask, chunk = ds.id.read_direct_chunk((0, 0, 0))
        assert mask == 0, "filter %d was skipped" % filter_id
        return bytes(chunk)


def v2_array(frame, codec):
    raw = frame.astype(frame.dtype.newbyteorder("<")).tobytes()
    if codec == "bslz4":
        content = cbor2.CBORTag(56500, ["bslz4", frame.dtype.itemsize,
                                        hdf5_chunk(frame, 32008, (0, 2))])
    elif codec == "lz4":
        content = cbor2.CBORTag(56500, ["lz4", 0, hdf5_chunk(frame, 32004, (0,))])
    else:
        content = raw
    return cbor2.CBORTag(40, [list(frame.shape), cbor2.CBORTag(TYPED[frame.dtype.name], content)])


def v2_messages(frames, codec):
    def msg(fields):
        return cbor2.dumps(cbor2.CBORTag(55799, fields))
    yield msg({"type": "start", "series_id": 4, "series_unique_id": "dtype-4",
               "image_dtype": frames.dtype.name, "image_size_x": COLS, "image_size_y": ROWS,
               "number_of_images": FRAMES, "channels": ["threshold_1"]})
    for i, frame in enumerate(frames):
        yield msg({"type": "image", "series_id": 4, "series_unique_id": "dtype-4", "image_id": i,
                   "data": {"threshold_1": v2_array(frame, codec)}})
    yield msg({"type": "end", "series_id": 4, "series_unique_id": "dtype-4"})


def v1_messages(frames, encoding):
    yield [json.dumps({"htype": "dheader-1.0", "series": 5, "header_detail": "basic"}),
           json.dumps({"x_pixels_in_detector": COLS, "y_pixels_in_detector": ROWS,
                       "nimages": FRAMES, "ntrigger": 1})]
    for i, frame in enumerate(frames):
        blob = (hdf5_chunk(frame, 32008, (0, 2)) if encoding.startswith("bs")
                else frame.astype(frame.dtype.newbyteorder("<")).tobytes())
        yield [json.dumps({"htype": "dimage-1.0", "series": 5, "frame": i, "hash": ""}),
               json.dumps({"htype": "dimage_d-1.0", "shape": [COLS, ROWS],
                           "type": frames.dtype.name, "encoding": encoding, "size": len(blob)}),
               blob, json.dumps({"htype": "dconfig-1.0"})]
    yield [json.dumps({"htype": "dseries_end-1.0", "series": 5})]


def stream_run(args, work, name, fmt, messages):
    """Binds PUSH, runs azflow --stream against it, sends `messages`; returns the output path."""
    endpoint = "ipc://" + os.path.join(work, name + ".sock")
    out = os.path.join(work, name + ".h5")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    push.setsockopt(zmq.SNDTIMEO, 20000)
    push.bind(endpoint)
    proc = subprocess.Popen([args.azflow, "integrate", "--stream", endpoint, "--stream-format",
                             fmt, "--poni", args.poni, "--stream-timeout", "20", "-o", out]
                            + SETTINGS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for m in messages:
        if isinstance(m, list):
            push.send_multipart([p.encode() if isinstance(p, str) else p for p in m])
        else:
            push.send(m)
    log = proc.communicate(timeout=60)[0].decode()
    push.close()
    ctx.term()
    check(proc.returncode == 0, f"{name}: azflow --stream exit {proc.returncode}: {log}")
    return out


def same(a, b, name):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for d in ("entry/integrate/I", "entry/integrate/I_errors"):
            x, y = fa[d][()], fb[d][()]
            check(x.shape == (FRAMES, 150), f"{name}: {d} shape {x.shape}")
            check(np.array_equal(x, y, equal_nan=True),
                  f"{name}: {d} differs from the file's (max |diff| "
                  f"{np.nanmax(np.abs(x - y)) if x.shape == y.shape else 'n/a'})")
            check(np.isfinite(x).sum() > x.size // 2, f"{name}: {d} mostly NaN")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--azflow", required=True)
    p.add_argument("--poni", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="azflow_stream_dtypes_") as work:
        for dtype in ("int16", "int64", "float64"):
            frames = frames_of(dtype)
            src = os.path.join(work, dtype + "_frames.h5")
            with h5py.File(src, "w") as f:
                f["entry/data/data"] = frames
            ref = os.path.join(work, dtype + "_file.h5")
            r = subprocess.run([args.azflow, "integrate", src, "--poni", args.poni, "-o", ref]
                               + SETTINGS, capture_output=True, text=True)
            check(r.returncode == 0, f"{dtype}: file run exit {r.returncode}: {r.stderr}")
            codecs = ["raw", "lz4" if dtype == "int64" else "bslz4"]
            for codec in codecs:
                name = f"{dtype}_v2_{codec}"
                same(stream_run(args, work, name, "stream2", v2_messages(frames, codec)), ref,
                     name)
            for encoding in ["<"] + (["bs16-lz4<"] if dtype == "int16" else []):
                name = f"{dtype}_v1_{encoding.replace('<', '').replace('-', '_') or 'raw'}"
                same(stream_run(args, work, name, "v1", v1_messages(frames, encoding)), ref, name)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)", file=sys.stderr)
        return 1
    print("stream dtypes: all cases equal the file path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
