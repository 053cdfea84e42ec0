#!/usr/bin/python3
"""azflowd's web page (GET /, docs/http.md "The page") in a real headless browser.

    page_test.py --azflowd BIN --sim AZFLOW_DETECTOR_SIM --source-dir DIR --out-dir DIR

Starts azflowd on a temporary state and runtime folder with `[http] listen = "127.0.0.1:0"`,
reads its URL file, opens the page in Debian's chromium driven by Selenium (chromium-driver,
python3-selenium), enqueues a 2D and a 1D job over the HTTP API and checks, through the page:
  - the jobs table shows the 1D job queued or running (azflowd's stage processes are stopped with
    SIGSTOP until the table shows it), then reaching "succeeded" with 20/20 frames;
  - the workers table has a row per stage (as GET /api/v1/workers);
  - the job view draws the latest frame (line-coloured pixels in the plot area of the canvas);
  - moving the frame slider with the keyboard plots another frame, whose values are that frame's
    (GET /api/v1/jobs/ID/frames/K, read here with urllib) and differ from the first one's,
    with frame 5's sigma as the band;
  - the log toggle makes the y axis logarithmic; "running mean" draws GET .../sum's I;
  - the 2D job's view draws a heatmap (many distinct colours in its image area);
  - a stream job fed by azflow-detector-sim (4 images/s) shows the receive counters line while
    the series runs and "20 images received ... 0 missing ... series ended" at its end, as GET
    /api/v1/jobs/ID's "stream"; a file job's view has no such line.
Screenshots of each view: OUT_DIR/web-jobs.png, web-job-1d.png, web-job-1d-frame5.png,
web-job-2d.png, web-job-stream.png. Exits 77 (a ctest skip) when chromium, chromedriver or selenium is missing.
Needs Debian's /usr/bin/python3 with h5py (the series is written by make_series.py).
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
import urllib.request

SKIP = 77


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--azflowd", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--sim", required=True, help="azflow-detector-sim")
    return p.parse_args()


def find_browser():
    """(chromium, chromedriver) paths, or exits with SKIP naming what is missing."""
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver (chromium-driver)", driver))
               if p is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        print("SKIP: no " + ", ".join(missing) + " (scripts/setup installs them)")
        sys.exit(SKIP)
    return chromium, driver


def wait_for(what, predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Daemon:
    """azflowd on a temporary folder; its URL from <runtime_dir>/<instance>.http."""

    def __init__(self, binary, root):
        self.root = root
        self.instance = "web%d" % os.getpid()
        config = os.path.join(root, "azflowd.toml")
        with open(config, "w") as f:
            # heartbeats every 3 s: a stage counts as lost after 9 s, far more than the test
            # keeps the stages stopped (SIGSTOP) for
            f.write('shard_frames = 5\nheartbeat_interval_ms = 3000\n'
                    '[http]\nlisten = "127.0.0.1:0"\n')
        self.log = open(os.path.join(root, "azflowd.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--config", config, "--instance", self.instance,
             "--state-dir", os.path.join(root, "state"), "--runtime-dir", os.path.join(root, "run"),
             "--workers", "1", "--integrate-workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT)
        url_file = os.path.join(root, "run", self.instance + ".http")

        def url():
            if self.proc.poll() is not None:
                raise AssertionError("azflowd exited with %s: see %s" % (self.proc.returncode,
                                                                          self.log.name))
            try:
                with open(url_file) as f:
                    return f.read().strip()
            except OSError:
                return ""
        self.url = wait_for("azflowd's URL file " + url_file, url)
        with open(os.path.join(root, "state", "http.token")) as f:
            self.token = f.read().strip()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.load(r)

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def children(self):
        """Process ids of azflowd's child processes (its azflow-stage workers)."""
        out = []
        for task in os.listdir("/proc/%d/task" % self.proc.pid):
            with open("/proc/%d/task/%s/children" % (self.proc.pid, task)) as f:
                out += [int(p) for p in f.read().split()]
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        for name in os.listdir("/dev/shm"):
            if name.startswith("azflow.%s." % self.instance) or name == "azflow-lock." + self.instance:
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass


# Line pixels of the profile plot: opaque and blue (#1f4fa0), inside Chart.js's chart area.
LINE_PIXELS_JS = """
const c = document.getElementById('profile');
const a = Chart.getChart(c).chartArea;
const d = c.getContext('2d').getImageData(a.left, a.top, a.right - a.left, a.bottom - a.top).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && d[i + 2] - d[i] > 80) n++;
return n;
"""

# Distinct colours in the heatmap's image area (left 70, top 10, right 110, bottom 50 margins).
HEATMAP_COLOURS_JS = """
const c = document.getElementById('heatmap');
const d = c.getContext('2d').getImageData(70, 10, c.width - 180, c.height - 60).data;
const s = new Set();
for (let i = 0; i < d.length; i += 4) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
return s.size;
"""


def main():
    args = parse_args()
    chromium, driver_path = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    os.makedirs(args.out_dir, exist_ok=True)
    root = tempfile.mkdtemp(prefix="azweb_")
    daemon = None
    browser = None
    try:
        fixtures = os.path.join(args.source_dir, "tests", "cli", "fixtures")
        subprocess.run(["/usr/bin/python3",
                        os.path.join(args.source_dir, "tests", "daemon", "fixtures", "make_series.py"),
                        "--out-dir", root, "--name", "s", "--frames", "20"], check=True)
        master = os.path.join(root, "s_master.h5")
        daemon = Daemon(args.azflowd, root)
        print("azflowd at", daemon.url)

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1200,1500"):
            options.add_argument(a)
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        browser.set_script_timeout(10)
        def texts(selector):
            """textContent of every element matching `selector`, read at one moment."""
            return browser.execute_script(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)",
                selector)

        browser.get(daemon.url + "/")
        assert browser.title == "azflow", browser.title
        wait_for("the first jobs poll", lambda: browser.execute_script(
            "return window.azflowPage && window.azflowPage.polls > 0"))

        with open(os.path.join(fixtures, "pilatus.poni")) as f:
            poni = f.read()

        def spec(output, npt_azim=0):
            settings = {"npt_rad": 200, "unit": "q_nm^-1", "error_model": "poisson"}
            if npt_azim:
                settings["npt_azim"] = npt_azim
            return {"spec": {"datasets": [master], "poni_text": poni, "settings": settings,
                             "output_path": os.path.join(root, output)}}

        # The 2D job first: azflowd starts its stage processes (and sizes its rings) with the
        # first job.
        job_2d = daemon.post("/api/v1/jobs", spec("two.h5", npt_azim=36))["job_id"]
        wait_for("job %d to succeed" % job_2d, lambda: daemon.get("/api/v1/jobs/%d" % job_2d)["job"][
            "state"] == "succeeded", timeout=30)

        # The stage processes are stopped (SIGSTOP) while job 1 is enqueued, so that the table
        # shows it before it ends (a 20-frame job takes well under the page's 1 s poll), and
        # continued once the table shows a state that is not final.
        # source, decompress and integrate
        stages = wait_for("azflowd's 3 stage processes",
                          lambda: (lambda c: c if len(c) >= 3 else None)(daemon.children()))
        for pid in stages:
            os.kill(pid, signal.SIGSTOP)
        try:
            job_1d = daemon.post("/api/v1/jobs", spec("one.h5"))["job_id"]
            held = wait_for("job %d's row in a state before succeeded" % job_1d, lambda: [
                t for t in texts('tr[data-job="%d"] td.state' % job_1d)
                if t in ("queued", "running")])
        finally:
            for pid in stages:
                os.kill(pid, signal.SIGCONT)
        states = held[:1]

        def row_state():
            cells = texts('tr[data-job="%d"] td.state' % job_1d)
            if cells:
                state = cells[0]
                if not states or states[-1] != state:
                    states.append(state)
                return state == "succeeded"
            return False
        wait_for("job %d's row to show succeeded" % job_1d, row_state, timeout=30)
        print("jobs table states of job", job_1d, ":", " -> ".join(states))
        assert states[0] in ("queued", "running") and states[-1] == "succeeded", states
        progress = texts('tr[data-job="%d"] td:nth-child(3)' % job_1d)
        assert [p.strip() for p in progress] == ["20/20"], progress
        # the workers table: one row per stage slot and the reducer, as GET /api/v1/workers
        workers = daemon.get("/api/v1/workers")["workers"]
        wait_for("the workers table", lambda: len(browser.find_elements(
            By.CSS_SELECTOR, "#workers tbody tr")) == len(workers))
        roles = texts("#workers tbody tr td:first-child")
        assert "integrate" in roles and "source" in roles, roles
        browser.save_screenshot(os.path.join(args.out_dir, "web-jobs.png"))

        # job view: click the row, the latest frame is plotted
        browser.find_element(By.CSS_SELECTOR, 'tr[data-job="%d"]' % job_1d).click()
        wait_for("job %d's plot" % job_1d, lambda: browser.execute_script(
            "const p = window.azflowPage; return p.view === 'job' && p.plotted !== null;"))
        line = browser.execute_script(LINE_PIXELS_JS)
        print("line pixels in the plot area:", line)
        assert line > 300, "the profile plot looks empty: %d line pixels" % line
        browser.save_screenshot(os.path.join(args.out_dir, "web-job-1d.png"))

        # the slider: HOME -> frame 0, then 5 steps right -> frame 5
        slider = browser.find_element(By.ID, "frame-slider")
        assert slider.get_attribute("max") == "19", slider.get_attribute("max")
        slider.send_keys(Keys.HOME)
        wait_for("frame 0 plotted", lambda: browser.execute_script(
            "return window.azflowPage.plotted.frame === 0"))
        i0 = browser.execute_script("return window.azflowPage.plotted.I")
        for _ in range(5):
            slider.send_keys(Keys.ARROW_RIGHT)
        wait_for("frame 5 plotted", lambda: browser.execute_script(
            "return window.azflowPage.plotted.frame === 5"))
        i5 = browser.execute_script("return window.azflowPage.plotted.I")
        api5 = daemon.get("/api/v1/jobs/%d/frames/5" % job_1d)
        assert i5 == api5["I"], "plotted values are not frame 5's"
        sigma5 = browser.execute_script("return window.azflowPage.plotted.sigma")
        assert sigma5 == api5["sigma"] and any(v for v in sigma5), "no sigma band for frame 5"
        band = browser.execute_script(
            "const c = Chart.getChart(document.getElementById('profile'));"
            "return [c.data.datasets[0].data.length, c.data.datasets[1].data.length];")
        assert band == [200, 200], "the sigma band has %s points" % band
        assert i5 != i0, "frames 0 and 5 plot the same values"
        browser.save_screenshot(os.path.join(args.out_dir, "web-job-1d-frame5.png"))

        # log intensity: the y axis becomes logarithmic, the same frame stays plotted
        browser.find_element(By.ID, "log-scale").click()
        wait_for("a logarithmic y axis", lambda: browser.execute_script(
            "return Chart.getChart(document.getElementById('profile')).scales.y.type"
            " === 'logarithmic' && window.azflowPage.plotted.frame === 5"))
        browser.find_element(By.ID, "log-scale").click()

        # running mean: GET /api/v1/jobs/ID/sum drawn as a fourth line
        browser.find_element(By.ID, "show-mean").click()
        sum_i = daemon.get("/api/v1/jobs/%d/sum" % job_1d)["I"]
        mean = wait_for("the running mean", lambda: browser.execute_script(
            "const d = Chart.getChart(document.getElementById('profile')).data.datasets[3];"
            "return d.hidden ? null : d.data.map(p => p.y);"))
        assert mean == sum_i, "the running mean line is not GET .../sum's I"
        browser.find_element(By.ID, "show-mean").click()

        # a 2D job: back to the table, click it, its heatmap is drawn
        browser.find_element(By.ID, "home").click()
        row2 = 'tr[data-job="%d"] td.state' % job_2d
        wait_for("job %d's row to show succeeded" % job_2d, lambda: texts(row2) == ["succeeded"],
                 timeout=30)
        browser.find_element(By.CSS_SELECTOR, 'tr[data-job="%d"]' % job_2d).click()
        wait_for("job %d's heatmap" % job_2d, lambda: browser.execute_script(
            "return window.azflowPage.heatmap !== null"))
        heatmap = browser.execute_script("return window.azflowPage.heatmap")
        assert heatmap["rows"] == 36 and heatmap["cols"] == 200, heatmap
        colours = browser.execute_script(HEATMAP_COLOURS_JS)
        print("distinct colours in the heatmap:", colours)
        assert colours > 50, "the heatmap looks empty: %d colours" % colours
        browser.save_screenshot(os.path.join(args.out_dir, "web-job-2d.png"))
        # a stream job (docs/streams.md): the simulator serves the series at 4 images/s (5 s); the
        # job view shows the source's receive counters while the series runs, then its end
        detector = "ipc://" + os.path.join(root, "det.sock")
        stream_spec = {"spec": {"stream": {"endpoint": detector, "max_frame_mib": 1},
                                "poni_text": poni,
                                "settings": {"npt_rad": 200, "unit": "q_nm^-1",
                                             "error_model": "poisson"},
                                "output_path": os.path.join(root, "stream.h5")}}
        job_stream = daemon.post("/api/v1/jobs", stream_spec)["job_id"]
        browser.find_element(By.ID, "home").click()
        row_stream = 'tr[data-job="%d"]' % job_stream
        wait_for("job %d's row" % job_stream, lambda: texts(row_stream + " td.state"))
        cells = wait_for("job %d's input cell" % job_stream, lambda: [
            t for t in texts(row_stream + " td:nth-child(7)") if t])
        assert cells == ["stream " + detector], cells
        browser.find_element(By.CSS_SELECTOR, row_stream).click()
        with open(os.path.join(root, "sim.log"), "w") as sim_log:
            sim = subprocess.Popen([args.sim, master, "--endpoint", detector, "--rate", "4"],
                                   stdout=sim_log, stderr=subprocess.STDOUT)
        try:
            def stream_line():
                return browser.execute_script(
                    "const p = document.getElementById('job-stream');"
                    "return p.hidden ? null : p.textContent;")
            running = wait_for("the stream counters while the series runs", lambda: (
                lambda t: t if t and "series running" in t and not t.startswith(
                    "stream: 0 images") else None)(stream_line()), timeout=30)
            print("stream panel while running:", running)
            label = browser.find_element(By.ID, "frame-label").text
            assert "undefined" not in label and label.endswith(", live)"), label
            summary = browser.find_element(By.ID, "job-summary").text
            assert summary.startswith("stream " + detector + " -> "), summary
            browser.save_screenshot(os.path.join(args.out_dir, "web-job-stream.png"))
            ended = wait_for("the stream counters at the series' end", lambda: (
                lambda t: t if t and "series ended" in t else None)(stream_line()), timeout=30)
            print("stream panel at the end:", ended)
            assert ended.startswith("stream: 20 images received"), ended
            assert "0 missing" in ended and "0 invalid" in ended, ended
            api = daemon.get("/api/v1/jobs/%d" % job_stream)["job"]["stream"]
            assert api["received"] == 20 and api["ended"], api
            wait_for("job %d to succeed" % job_stream, lambda: daemon.get(
                "/api/v1/jobs/%d" % job_stream)["job"]["state"] == "succeeded", timeout=30)
            wait_for("job %d's plot" % job_stream, lambda: browser.execute_script(
                "const p = window.azflowPage; return p.view === 'job' && p.plotted !== null;"))
            assert sim.wait(timeout=10) == 0, "the simulator failed"
        except AssertionError:
            print("stream job:", daemon.get("/api/v1/jobs/%d" % job_stream)["job"])
            with open(os.path.join(root, "sim.log")) as f:
                print("simulator:", f.read())
            raise
        finally:
            if sim.poll() is None:
                sim.kill()
        # a file job's view has no stream line
        browser.find_element(By.ID, "home").click()
        browser.find_element(By.CSS_SELECTOR, 'tr[data-job="%d"]' % job_1d).click()
        wait_for("job %d's view without a stream line" % job_1d, lambda: browser.execute_script(
            "return window.azflowPage.view === 'job' && window.azflowPage.job &&"
            " window.azflowPage.job.id === arguments[0] &&"
            " document.getElementById('job-stream').hidden", job_1d))
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, "browser console errors: %s" % errors
        print("OK: screenshots in", args.out_dir)
        return 0
    finally:
        if browser is not None:
            browser.quit()
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
