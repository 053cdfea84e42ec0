#!/usr/bin/python3
"""Writes the fuzzers' seed corpus from the source fixtures (tests/source/fixtures/plain.h5):
a few real chunks, each prefixed with the fuzzer's parameter bytes. Rerun after changing them."""
import os
import h5py
import lz4.block

HERE = os.path.dirname(os.path.abspath(__file__))
PLAIN = os.path.join(HERE, "..", "..", "tests", "source", "fixtures", "plain.h5")
ELEM_SELECTOR = {1: 0, 2: 1, 4: 2}


def chunk(f, name, frame=0):
    return f[name].id.read_direct_chunk((frame, 0, 0))[1]


def put(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as out:
        out.write(data)


with h5py.File(PLAIN, "r") as f:
    for name, elem in [("bslz4_u8", 1), ("bslz4_u16_block24", 2), ("bslz4_u32_block64", 4)]:
        for level in range(3):
            put("fuzz_bitshuffle_lz4", f"{name}_l{level}", bytes([ELEM_SELECTOR[elem] | level << 2]) + chunk(f, name))
    put("fuzz_lz4_h5", "lz4_u16", b"\0" + chunk(f, "lz4_u16"))
    put("fuzz_lz4_h5", "lz4_u32_raw_blocks", b"\0" + chunk(f, "lz4_u32_raw_blocks", 1)[:3000])
    raw = f["bslz4_u16"][0].tobytes()[:4000]
    packed = lz4.block.compress(raw, store_size=False)
    put("fuzz_lz4_raw", "frame_u16", len(raw).to_bytes(2, "little") + packed)

# fuzz_gpu_decode: byte 0 = codec (bits 0-1) | element size (bits 2-3) | lanes (bits 4-5).
GPU_ELEM = {1: 0, 2: 1, 4: 2}
with h5py.File(PLAIN, "r") as f:
    for name, elem in [("bslz4_u8", 1), ("bslz4_u16_block24", 2), ("bslz4_u32_block64", 4)]:
        for lanes in (0, 2):
            put("fuzz_gpu_decode", f"{name}_lanes{lanes}", bytes([0 | GPU_ELEM[elem] << 2 | lanes << 4]) + chunk(f, name))
    put("fuzz_gpu_decode", "lz4_u16", bytes([1 | 1 << 2 | 2 << 4]) + chunk(f, "lz4_u16"))
    put("fuzz_gpu_decode", "lz4_u32_raw_blocks", bytes([1 | 2 << 2 | 1 << 4]) + chunk(f, "lz4_u32_raw_blocks", 1)[:3000])
    raw = f["bslz4_u16"][0].tobytes()[:4000]
    packed = lz4.block.compress(raw, store_size=False)
    put("fuzz_gpu_decode", "lz4_raw_u16", bytes([2 | 1 << 2 | 2 << 4]) + len(raw).to_bytes(2, "little") + packed)
