#!/usr/bin/python3
"""A series still being written, as a detector's file writer makes it (for the --follow tests).

Usage: grow_series.py FIXTURES OUT NIMAGES. Publishes (by rename) into OUT a copy of the Pilatus
fixture's master (FIXTURES/pilatus_master.h5) with nimages set to NIMAGES, then
pilatus_data_000001.h5 with frame 0, appends frame 1 to it in place, then publishes
pilatus_data_000002.h5 with frame 2; 0.5 s between steps; writes OUT/done at the end. The frames
are the fixture's, written again with bitshuffle+LZ4 (filter 32008), one frame per chunk, as the
EIGER file writer stores them.
"""
import os, shutil, sys, time
import h5py, numpy as np
fixtures, out, nimages = sys.argv[1], sys.argv[2], int(sys.argv[3])
frames = np.concatenate([h5py.File(os.path.join(fixtures, f"pilatus_data_00000{i}.h5"), "r")
                         ["entry/data/data"][()] for i in (1, 2)])
kw = dict(compression=32008, compression_opts=(0, 2), chunks=(1,) + frames.shape[1:])
def publish(name, build):
    tmp = os.path.join(out, name + ".tmp")
    build(tmp)
    os.rename(tmp, os.path.join(out, name))
def master(tmp):
    shutil.copy(os.path.join(fixtures, "pilatus_master.h5"), tmp)
    with h5py.File(tmp, "a") as f:
        spec = f["entry/instrument/detector/detectorSpecific"]
        del spec["nimages"]
        spec["nimages"] = np.int64(nimages)
def data(first, last, grow):
    def build(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("entry/data/data", data=frames[first:last],
                             maxshape=(None,) + frames.shape[1:] if grow else None, **kw)
    return build
publish("pilatus_master.h5", master)
time.sleep(0.5)
publish("pilatus_data_000001.h5", data(0, 1, True))
time.sleep(0.5)
with h5py.File(os.path.join(out, "pilatus_data_000001.h5"), "a") as f:
    d = f["entry/data/data"]
    d.resize(2, axis=0)
    d[1] = frames[1]
time.sleep(0.5)
publish("pilatus_data_000002.h5", data(2, 3, False))
open(os.path.join(out, "done"), "w").close()
