// azflowd's web page (docs/http.md "The page"): a jobs table polled from GET /api/v1/jobs every
// second with the workers and peers, and a job view (#job/ID) with one frame's I(radial) and its sigma band (Chart.js),
// a frame slider over the frames integrated so far (GET /api/v1/jobs/ID/frames/K), the running
// mean (GET /api/v1/jobs/ID/sum), a log/linear toggle and, for 2D jobs, the cake as a heatmap on
// a plain canvas. Only azflowd's own URLs are fetched.
//
// window.azflowPage holds what is shown (view, job, plotted frame and values, heatmap), so that
// tests (tests/web/page_test.py) can read the page's state.
"use strict";

const page = {
  view: "jobs",      // "jobs" or "job"
  jobs: [],          // last GET /api/v1/jobs answer
  jobId: null,       // the job view's job
  job: null,         // its GET /api/v1/jobs/ID object
  frame: null,       // the frame asked for (index), null = latest
  plotted: null,     // {frame, unit, radial, I, sigma} as drawn (2D: I is the azimuthal mean)
  heatmap: null,     // {frame, rows, cols, min, max} of the drawn cake
  polls: 0,          // completed job-list polls
  workers: [],       // last GET /api/v1/workers "workers"
  peers: [],         // last GET /api/v1/peers "peers"
};
window.azflowPage = page;

const ENDED = new Set(["succeeded", "warning", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : r.status + " " + r.statusText;
    throw new Error(msg);
  }
  return body;
}

function fmt(x, digits = 1) {
  return x === null || x === undefined || Number.isNaN(x) ? "-" : Number(x).toFixed(digits);
}

/// Frames integrated so far, exact to the frame (frames_done counts only done shards).
function framesIntegrated(job) {
  return Math.max(job.frames_integrated ?? job.frames_done ?? 0, job.frames_published || 0);
}

function framesAvailable(job) {
  if (!job) return 0;
  if (ENDED.has(job.state)) return job.frames_total || 0;
  return framesIntegrated(job);
}

// ------------------------------------------------------------------------------- jobs table

/// The jobs table, updated in place: a job keeps its row (and its cells) from poll to poll.
function renderJobs() {
  const body = $("jobs").querySelector("tbody");
  const rows = new Map([...body.children].map((tr) => [tr.dataset.job, tr]));
  for (const job of page.jobs) {
    let tr = rows.get(String(job.id));
    if (tr) {
      rows.delete(String(job.id));
    } else {
      tr = document.createElement("tr");
      tr.dataset.job = job.id;
      tr.className = "job-row";
      for (let i = 0; i < 7; i++) tr.appendChild(document.createElement("td"));
      tr.children[2].innerHTML = '<span class="bar"><span></span></span> <span class="count"></span>';
      tr.addEventListener("click", () => { location.hash = "#job/" + job.id; });
    }
    const total = job.frames_total || 0;
    const done = job.state === "succeeded"
      ? total : framesIntegrated(job);
    const cells = tr.children;
    cells[0].textContent = String(job.id);
    cells[1].textContent = job.state;
    cells[1].className = "state state-" + job.state;
    cells[2].querySelector(".bar > span").style.width =
      (total > 0 ? Math.min(100, (100 * done) / total) : 0) + "%";
    cells[2].querySelector(".count").textContent = `${done}/${total}`;
    cells[3].textContent = fmt(job.frames_per_s);
    cells[4].textContent = job.eta_s === null || job.eta_s === undefined ? "-" : fmt(job.eta_s, 0) + " s";
    cells[5].textContent = String(job.frames_failed || 0);
    cells[6].textContent = jobInput(job);
    body.appendChild(tr);  // moves an existing row: the table keeps the API's order
  }
  for (const tr of rows.values()) tr.remove();
  $("no-jobs").hidden = page.jobs.length > 0;
}

/// Fills table `id`'s body in place with one row per object of `items`, `cells(item)` giving its texts.
function fillTable(id, items, cells) {
  const body = $(id).querySelector("tbody");
  items.forEach((item, i) => {
    const texts = cells(item);
    let tr = body.children[i];
    if (!tr) {
      tr = document.createElement("tr");
      body.appendChild(tr);
    }
    while (tr.children.length < texts.length) tr.appendChild(document.createElement("td"));
    texts.forEach((text, k) => { tr.children[k].textContent = text; });
  });
  while (body.children.length > items.length) body.lastElementChild.remove();
  $("no-" + id).hidden = items.length > 0;
}

const pct = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(0) + " %");

async function pollWorkers() {
  const [w, p] = await Promise.all([getJson("/api/v1/workers"), getJson("/api/v1/peers")]);
  page.workers = w.workers || [];
  page.peers = p.peers || [];
  fillTable("workers", page.workers, (x) => [x.role, String(x.worker), x.state, x.device,
    fmt(x.frames_per_s), pct(x.busy_fraction), x.ring ? `${x.ring} ${pct(x.ring_fill)}` : "-",
    String(x.restarts ?? 0)]);
  fillTable("peers", page.peers, (x) => [x.node, x.endpoint, x.state,
    String(x.shards_in_flight ?? "-"), String(x.guest_shards ?? "-"),
    x.last_heartbeat_age_s === null || x.last_heartbeat_age_s === undefined
      ? "-" : fmt(x.last_heartbeat_age_s) + " s ago"]);
}

async function pollJobs() {
  try {
    const answer = await getJson("/api/v1/jobs");
    page.jobs = answer.jobs || [];
    $("status").textContent = "live, " + new Date().toLocaleTimeString();
    renderJobs();
    if (page.view === "jobs") await pollWorkers();
    if (page.view === "job") await refreshJob();
  } catch (e) {
    $("status").textContent = "azflowd not answering: " + e.message;
  }
  page.polls++;
  setTimeout(pollJobs, 1000);
}

// --------------------------------------------------------------------------------- job view

let chart = null;

function makeChart() {
  const ctx = $("profile").getContext("2d");
  chart = new Chart(ctx, {
    type: "line",
    data: {
      datasets: [
        { label: "I - sigma", data: [], borderWidth: 0, pointRadius: 0, borderColor: "rgba(0,0,0,0)" },
        { label: "I + sigma", data: [], borderWidth: 0, pointRadius: 0, borderColor: "rgba(0,0,0,0)",
          fill: "-1", backgroundColor: "rgba(58,123,213,0.25)" },
        { label: "I", data: [], borderWidth: 1.5, pointRadius: 0, borderColor: "#1f4fa0" },
        { label: "running mean", data: [], borderWidth: 1, pointRadius: 0, borderColor: "#d0661a",
          hidden: true },
      ],
    },
    options: {
      animation: false,
      responsive: false,
      parsing: false,
      normalized: true,
      spanGaps: false,
      plugins: { legend: { labels: { filter: (item) => item.datasetIndex >= 2 } } },
      scales: {
        x: { type: "linear", title: { display: true, text: "radial" } },
        y: { type: "linear", title: { display: true, text: "I" } },
      },
    },
  });
}

/// I of a 2D frame averaged over its azimuthal rows (null bins left out), one value per radial bin.
function azimuthalMean(rows) {
  if (!rows.length || !Array.isArray(rows[0])) return rows;
  const n = rows[0].length;
  const out = new Array(n).fill(null);
  for (let r = 0; r < n; r++) {
    let s = 0, c = 0;
    for (const row of rows) if (row[r] !== null) { s += row[r]; c++; }
    out[r] = c ? s / c : null;
  }
  return out;
}

function sigmaMean(rows) {
  if (!rows || !rows.length || !Array.isArray(rows[0])) return rows;
  const n = rows[0].length;
  const out = new Array(n).fill(null);
  for (let r = 0; r < n; r++) {
    let s = 0, c = 0;
    for (const row of rows) if (row[r] !== null) { s += row[r] * row[r]; c++; }
    out[r] = c ? Math.sqrt(s) / c : null;
  }
  return out;
}

function points(radial, values, log) {
  return radial.map((x, i) => {
    const y = values ? values[i] : null;
    return { x, y: y === null || y === undefined || (log && y <= 0) ? null : y };
  });
}

function drawProfile(f) {
  if (!chart) makeChart();
  const log = $("log-scale").checked;
  const I = azimuthalMean(f.I);
  const sigma = f.sigma ? sigmaMean(f.sigma) : null;
  const lo = sigma ? I.map((v, i) => (v === null || sigma[i] === null ? null : v - sigma[i])) : null;
  const hi = sigma ? I.map((v, i) => (v === null || sigma[i] === null ? null : v + sigma[i])) : null;
  chart.data.datasets[0].data = lo ? points(f.radial, lo, log) : [];
  chart.data.datasets[1].data = hi ? points(f.radial, hi, log) : [];
  chart.data.datasets[2].data = points(f.radial, I, log);
  chart.data.datasets[2].label = "I, frame " + f.frame + (Array.isArray(f.I[0]) ? " (azimuthal mean)" : "");
  chart.options.scales.x.title.text = f.unit || "radial";
  chart.options.scales.y.type = log ? "logarithmic" : "linear";
  chart.update();
  page.plotted = { frame: f.frame, unit: f.unit, radial: f.radial, I, sigma };
}

async function drawMean() {
  const ds = chart ? chart.data.datasets[3] : null;
  if (!ds) return;
  if (!$("show-mean").checked) { ds.hidden = true; chart.update(); return; }
  try {
    const s = await getJson(`/api/v1/jobs/${page.jobId}/sum`);
    ds.data = points(s.radial, azimuthalMean(s.I), $("log-scale").checked);
    ds.label = `running mean (${s.frames} frames)`;
    ds.hidden = false;
  } catch (e) {
    ds.hidden = true;
  }
  chart.update();
}

// A perceptually ordered colour map (dark blue -> green -> yellow), interpolated between stops.
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(t) {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const u = x - i;
  return STOPS[i].map((c, k) => Math.round(c + u * (STOPS[i + 1][k] - c)));
}

function drawHeatmap(f) {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  const rows = f.I, nAzim = rows.length, nRad = rows[0].length;
  const log = $("log-scale").checked;
  const tr = (v) => (v === null ? null : log ? (v > 0 ? Math.log10(v) : null) : v);
  let min = Infinity, max = -Infinity;
  for (const row of rows) for (const v of row) {
    const t = tr(v);
    if (t !== null) { min = Math.min(min, t); max = Math.max(max, t); }
  }
  if (!(max > min)) max = min + 1;
  const img = new ImageData(nRad, nAzim);
  for (let a = 0; a < nAzim; a++) for (let r = 0; r < nRad; r++) {
    const t = tr(rows[a][r]);
    const o = 4 * (a * nRad + r);
    const c = t === null ? [255, 255, 255] : colour((t - min) / (max - min));
    img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
  }
  const off = document.createElement("canvas");
  off.width = nRad; off.height = nAzim;
  off.getContext("2d").putImageData(img, 0, 0);
  const left = 70, top = 10, right = 110, bottom = 50;
  const w = canvas.width - left - right, h = canvas.height - top - bottom;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, left, top, w, h);
  ctx.strokeStyle = "#444";
  ctx.strokeRect(left, top, w, h);
  // axes: radial along x, azimuthal (chi, degrees) along y, 5 ticks each at bin centres
  ctx.fillStyle = "#222";
  ctx.font = "12px sans-serif";
  ctx.textAlign = "center";
  for (let k = 0; k < 5; k++) {
    const i = Math.round((k * (nRad - 1)) / 4);
    const x = left + ((i + 0.5) * w) / nRad;
    ctx.fillRect(x, top + h, 1, 5);
    ctx.fillText(Number(f.radial[i]).toPrecision(3), x, top + h + 18);
  }
  ctx.fillText(f.unit || "radial", left + w / 2, top + h + 40);
  ctx.textAlign = "right";
  const chi = f.azimuthal || [];
  for (let k = 0; k < 5 && chi.length; k++) {
    const i = Math.round((k * (nAzim - 1)) / 4);
    const y = top + ((i + 0.5) * h) / nAzim;
    ctx.fillRect(left - 5, y, 5, 1);
    ctx.fillText(Number(chi[i]).toFixed(0), left - 8, y + 4);
  }
  ctx.save();
  ctx.translate(16, top + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("chi (deg)", 0, 0);
  ctx.restore();
  // colour bar
  const bx = left + w + 20;
  for (let y = 0; y < h; y++) {
    const c = colour(1 - y / (h - 1));
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(bx, top + y, 16, 1);
  }
  ctx.fillStyle = "#222";
  ctx.textAlign = "left";
  const label = (v) => (log ? "1e" + v.toFixed(1) : v.toPrecision(3));
  ctx.fillText(label(max), bx + 20, top + 10);
  ctx.fillText(label(min), bx + 20, top + h);
  page.heatmap = { frame: f.frame, rows: nAzim, cols: nRad, min, max };
}

let frameRequest = 0;

async function showFrame() {
  const id = page.jobId;
  const which = page.frame === null ? "latest" : String(page.frame);
  const mine = ++frameRequest;
  let f;
  try {
    f = await getJson(`/api/v1/jobs/${id}/frames/${which}`);
  } catch (e) {
    if (mine === frameRequest) $("frame-message").textContent = `frame ${which}: ${e.message}`;
    return;
  }
  if (mine !== frameRequest || id !== page.jobId) return;  // a newer request or another job
  $("frame-message").textContent = f.status === "failed" ? `frame ${f.frame} failed` : "";
  $("frame-label").textContent = `${f.frame} (row ${f.row}, ${f.source})`;
  if (page.frame === null && f.row !== undefined) $("frame-slider").value = f.row;
  drawProfile(f);
  const is2d = Array.isArray(f.I[0]);
  $("heatmap-box").hidden = !is2d;
  if (is2d) drawHeatmap(f);
  await drawMean();
}

// What a job reads: its dataset, or for a stream job the detector's endpoint.
function jobInput(job) {
  if (job.dataset) return job.dataset;
  return job.stream_endpoint ? `stream ${job.stream_endpoint}` : "";
}

// A stream job's receive counters (status's "stream" object, docs/protocol.md); hidden for
// file jobs and before the source stage has sent any.
function showStream(st) {
  const p = $("job-stream");
  p.hidden = !st;
  if (!st) return;
  const rate = st.receive_rate_per_s === null || st.receive_rate_per_s === undefined
    ? "-" : fmt(st.receive_rate_per_s);
  p.textContent = `stream: ${st.received ?? 0} images received (${rate} images/s), ` +
    `${st.missing ?? 0} missing, ${st.duplicate ?? 0} duplicate, ` +
    `${st.out_of_range ?? 0} out of range, ${st.invalid ?? 0} invalid messages` +
    (st.first_invalid ? ` (first: ${st.first_invalid})` : "") +
    (st.ended ? "; series ended" : "; series running");
}

async function refreshJob() {
  let answer;
  try {
    answer = await getJson(`/api/v1/jobs/${page.jobId}`);
  } catch (e) {
    $("job-summary").textContent = e.message;
    return;
  }
  const job = answer.job;
  const before = page.job;
  page.job = job;
  const s = job.spec && job.spec.settings ? job.spec.settings : {};
  $("job-title").textContent = `Job ${job.id}: ${job.state}`;
  $("job-summary").textContent =
    `${jobInput(job)} -> ${job.output || ""}; npt_rad ${s.npt_rad ?? "-"}` +
    (s.npt_azim ? `, npt_azim ${s.npt_azim}` : "") + `, unit ${s.unit ?? "-"}; ` +
    `${framesIntegrated(job)}/${job.frames_total} frames done, ${job.frames_failed} failed, ` +
    `${fmt(job.frames_per_s)} frames/s`;
  showStream(job.stream);
  const n = framesAvailable(job);
  $("frame-slider").max = Math.max(0, n - 1);
  $("frame-slider").disabled = n === 0;
  const errors = job.frame_errors || [];
  const ul = $("frame-errors");
  ul.replaceChildren();
  for (const e of errors.length ? errors : [{ frame: null, reason: "none" }]) {
    const li = document.createElement("li");
    li.textContent = e.frame === null ? e.reason : `frame ${e.frame}: ${e.reason}`;
    ul.appendChild(li);
  }
  const changed = !before || before.state !== job.state ||
    framesIntegrated(before) !== framesIntegrated(job);
  if (n > 0 && (page.plotted === null || (page.frame === null && changed))) await showFrame();
}

function route() {
  const m = location.hash.match(/^#job\/(\d+)$/);
  if (m) {
    const id = Number(m[1]);
    if (page.jobId !== id) {
      page.jobId = id;
      page.job = null;
      page.plotted = null;
      page.heatmap = null;
      page.frame = null;
      $("follow").checked = true;
      $("frame-slider").value = 0;
      $("frame-label").textContent = "-";
      $("frame-message").textContent = "";
      $("heatmap-box").hidden = true;
      if (chart) { chart.data.datasets.forEach((d) => { d.data = []; }); chart.update(); }
    }
    page.view = "job";
    $("jobs-view").hidden = true;
    $("job-view").hidden = false;
    refreshJob();
  } else {
    page.view = "jobs";
    page.jobId = null;
    $("jobs-view").hidden = false;
    $("job-view").hidden = true;
  }
}

$("frame-slider").addEventListener("input", () => {
  page.frame = Number($("frame-slider").value);
  $("follow").checked = false;
  showFrame();
});
$("follow").addEventListener("change", () => {
  page.frame = $("follow").checked ? null : Number($("frame-slider").value);
  showFrame();
});
$("log-scale").addEventListener("change", () => { if (page.jobId !== null) showFrame(); });
$("show-mean").addEventListener("change", () => { drawMean(); });
window.addEventListener("hashchange", route);

route();
pollJobs();
