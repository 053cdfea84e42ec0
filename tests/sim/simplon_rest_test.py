#!/usr/bin/python3
"""azflow-detector-sim --rest driven as a beamline control system drives a DECTRIS DCU.

Python's urllib sends the SIMPLON 1.8 requests; a pyzmq PULL socket receives the series, decoded
with cbor2 (Stream V2) or as JSON parts (stream v1), nothing of azflow. Checks, on the committed
EIGER fixture: GET/PUT /stream/api/1.8.0/config/mode documents; with the stream disabled, arm,
trigger and disarm answer but send nothing; enabled, arm sends the start message only (and
answers the "sequence id"), trigger sends every image (image_id in order, each the frame's stored
chunk byte for byte, read with h5py), disarm sends the end message; commands out of order (trigger
before arm, arm twice), a bad mode value and an unknown path are refused with 400/404; then the
same series in stream v1 (dheader-1.0 on arm, dimage-1.0 per frame on trigger, dseries_end-1.0
on disarm); SIGTERM ends the simulator with exit code 0.
Usage: simplon_rest_test.py --sim BUILD/sim/azflow-detector-sim --fixtures tests/source/fixtures
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import cbor2
import h5py
import zmq

FAILURES = []
SELF_DESCRIBE = bytes([0xD9, 0xD9, 0xF7])  # tag 55799, as every Stream V2 message starts


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


def stored_chunks(master):
    out = []
    with h5py.File(master) as f:
        for key in sorted(f["entry/data"]):
            ds = f["entry/data"][key]
            out += [bytes(ds.id.read_direct_chunk((i, 0, 0))[1]) for i in range(ds.shape[0])]
    return out


class Sim:
    def __init__(self, sim, master, *extra):
        self.proc = subprocess.Popen([sim, master, "--endpoint", "tcp://127.0.0.1:*", "--rest",
                                      "127.0.0.1:0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        bound = self.proc.stdout.readline().split()
        rest = self.proc.stdout.readline().split()
        check(bound[:2] == ["azflow-detector-sim:", "bound"], f"bound line {bound}")
        check(rest[:3] == ["azflow-detector-sim:", "REST", "on"], f"REST line {rest}")
        self.base = "http://" + rest[-1]
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.connect(bound[-1])

    def request(self, method, path, body=None):
        """(status, body text) of one HTTP request."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def command(self, name):
        return self.request("PUT", "/detector/api/1.8.0/command/" + name)

    def received(self, multipart=False, wait_ms=300):
        """Every message that arrives within wait_ms of the previous one."""
        msgs = []
        while self.pull.poll(wait_ms):
            msgs.append(self.pull.recv_multipart() if multipart else self.pull.recv())
        return msgs

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        check(rc == 0, f"exit code {rc} after SIGTERM: {self.proc.stderr.read()}")
        self.pull.close(linger=0)
        self.ctx.term()


def stream2_case(sim, master, chunks):
    s = Sim(sim, master)
    status, body = s.request("GET", "/stream/api/1.8.0/config/mode")
    check(status == 200 and json.loads(body) == {
        "value": "enabled", "value_type": "string", "access_mode": "rw",
        "allowed_values": ["enabled", "disabled"]}, f"GET mode: {status} {body}")
    status, body = s.request("PUT", "/stream/api/1.8.0/config/mode", {"value": "disabled"})
    check(status == 200 and json.loads(body) == ["mode"], f"PUT mode disabled: {status} {body}")
    check(json.loads(s.request("GET", "/stream/api/1.8.0/config/mode")[1])["value"] == "disabled",
          "mode not disabled")
    status, body = s.command("arm")
    check(status == 200 and json.loads(body) == {"sequence id": 1}, f"arm (disabled): {body}")
    check(s.command("trigger")[0] == 200, "trigger (disabled)")
    check(s.command("disarm")[0] == 200, "disarm (disabled)")
    check(s.received() == [], "a disabled stream sent messages")

    check(s.request("PUT", "/stream/api/1.8.0/config/mode", {"value": "on"})[0] == 400,
          "bad mode value accepted")
    check(s.request("PUT", "/stream/api/1.8.0/config/mode", {"value": "enabled"})[0] == 200,
          "PUT mode enabled")
    check(s.command("trigger")[0] == 400, "trigger before arm accepted")
    check(s.request("PUT", "/detector/api/1.8.0/command/initialize")[0] == 404,
          "unknown command path not 404")

    status, body = s.command("arm")
    check(status == 200 and json.loads(body) == {"sequence id": 2}, f"arm: {status} {body}")
    check(s.command("arm")[0] == 400, "second arm accepted")
    start = s.received()
    check(len(start) == 1, f"arm sent {len(start)} messages, expected the start message alone")
    if start:
        check(start[0][:3] == SELF_DESCRIBE, "start: no self-describe tag 55799")
        v = cbor2.loads(start[0])  # cbor2 drops tag 55799
        check(v.get("type") == "start" and v.get("series_id") == 2 and
              v.get("number_of_images") == len(chunks), f"start fields {list(v)[:6]}")
    status, _ = s.command("trigger")
    check(status == 200, f"trigger: {status}")
    images = [cbor2.loads(m) for m in s.received()]
    check([m.get("type") for m in images] == ["image"] * len(chunks),
          f"trigger sent {[m.get('type') for m in images]}")
    check([m.get("image_id") for m in images] == list(range(len(chunks))), "image ids")
    for i, m in enumerate(images[:len(chunks)]):
        array = next(iter(m["data"].values()))  # tag 40 [[rows, cols], typed array]
        payload = array.value[1].value.value[2]  # typed array -> tag 56500 [alg, elem, bytes]
        check(payload == chunks[i], f"image {i}: not the stored chunk")
    status, body = s.command("disarm")
    check(status == 200 and json.loads(body) == {"sequence id": 2}, f"disarm: {status} {body}")
    end = [cbor2.loads(m) for m in s.received()]
    check([(m.get("type"), m.get("series_id")) for m in end] == [("end", 2)], f"disarm sent {end}")
    s.stop()


def v1_case(sim, master, chunks):
    s = Sim(sim, master, "--format", "v1")
    check(s.command("arm")[0] == 200, "v1 arm")
    head = s.received(multipart=True)
    check(len(head) == 1 and json.loads(head[0][0])["htype"] == "dheader-1.0",
          f"v1 arm sent {len(head)} messages")
    check(s.command("trigger")[0] == 200, "v1 trigger")
    images = s.received(multipart=True)
    check([json.loads(m[0]).get("frame") for m in images] == list(range(len(chunks))),
          "v1 frames")
    check(all(m[2] == chunks[i] for i, m in enumerate(images[:len(chunks)])),
          "v1 blobs are not the stored chunks")
    check(s.command("disarm")[0] == 200, "v1 disarm")
    end = s.received(multipart=True)
    check(len(end) == 1 and json.loads(end[0][0])["htype"] == "dseries_end-1.0", "v1 end")
    s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sim", required=True)
    p.add_argument("--fixtures", required=True)
    args = p.parse_args()
    master = os.path.join(args.fixtures, "eiger_master.h5")
    chunks = stored_chunks(master)
    stream2_case(args.sim, master, chunks)
    v1_case(args.sim, master, chunks)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)", file=sys.stderr)
        return 1
    print("SIMPLON REST: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
