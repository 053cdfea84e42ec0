#!/usr/bin/python3
"""Writes fuzz_stream1's seed corpus: the v1 messages of tests/source/fixtures/
make_stream1_messages.py under 60 kB, each packed as fuzz_stream1 reads its input (per part a
2-byte little-endian length, then the part). Rerun after changing that script."""
import json
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "tests", "source", "fixtures", "make_stream1_messages.py")

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(["/usr/bin/python3", SCRIPT, "--out-dir", tmp], check=True)
    with open(os.path.join(tmp, "manifest.json")) as f:
        cases = json.load(f)
    out_dir = os.path.join(HERE, "fuzz_stream1")
    os.makedirs(out_dir, exist_ok=True)
    for c in cases:
        packed = b""
        for i in range(1, c["parts"] + 1):
            with open(os.path.join(tmp, "%s.%d" % (c["name"], i)), "rb") as f:
                part = f.read()
            if len(part) > 0xFFFF:
                packed = b""
                break
            packed += struct.pack("<H", len(part)) + part
        if packed and len(packed) < 60000:
            with open(os.path.join(out_dir, c["name"]), "wb") as f:
                f.write(packed)
