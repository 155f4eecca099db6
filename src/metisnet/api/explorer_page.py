"""The explorer's one page: static HTML, CSS and vanilla JavaScript; no build step, no assets.

The charts are inline SVG drawn by the page's own few functions (no chart library, nothing
fetched from elsewhere): tasks settled (and failed) per minute and input rows per minute over
a clock-time axis, and each finished task's latency as a bar split by the time it spent in
each stage. Every value from
the chain is put into the page with ``textContent`` or an SVG attribute (never as HTML), so a
node's endpoint string cannot inject markup.

Polling: the live task (the one named by ``?task=N``, or else the newest task in flight, or
else the newest task) every 100 ms while it runs (a stage can last a quarter of a second;
``/api/live`` is a handful of chain reads) and every second once it has a verdict; the rest
of the page every second (``tick``), nodes and datasets every fifth tick. The stage history
comes from the chain's events, so a stage shorter than a poll is still listed, with its
block. The live panel
carries ``data-task``, ``data-stage``, ``data-verdict`` and ``data-history`` (the stages the
chain's events recorded, comma separated) for scripts and tests.
"""

from __future__ import annotations

__all__ = ["PAGE"]

_STYLE = r"""
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
 h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
 .muted { color: #6b7385; } code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
 table { border-collapse: collapse; background: #fff; width: 100%; }
 th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6ec; }
 th { background: #eef0f4; font-weight: 600; }
 td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
 #tasks tr { cursor: pointer; } #tasks tr:hover { background: #f0f4ff; }
 #tasks tr.pinned { background: #e3ecfb; }
 .panel { background: #fff; border: 1px solid #d8dce4; border-radius: 6px; padding: .8em 1em; }
 ol.stages { list-style: none; display: flex; gap: .4em; padding: 0; margin: .6em 0;
             flex-wrap: wrap; }
 ol.stages li { padding: .3em .8em; border-radius: 1em; background: #e3e6ec; color: #6b7385; }
 ol.stages li small { display: block; font-size: 10px; opacity: .85; }
 ol.stages li.done { background: #2e7d32; color: #fff; }
 ol.stages li.current { background: #1565c0; color: #fff; }
 ol.stages li.bad { background: #c62828; color: #fff; }
 .verdict-verified { color: #2e7d32; font-weight: 700; }
 .verdict-rejected, .verdict-failed { color: #c62828; font-weight: 700; }
 .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
 .grid3 { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 1em; }
 svg { background: #fff; border: 1px solid #d8dce4; width: 100%; height: auto; }
 .legend span { display: inline-block; margin-right: .8em; font-size: 12px; }
 .legend i { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
"""

_BODY = r"""
<h1>metisnet explorer</h1>
<div class="muted">read only: public chain data, never a dataset's rows &middot;
 <span id="status">loading</span></div>

<h2>Live task</h2>
<div id="live" class="panel" data-task="" data-stage="" data-verdict="" data-history="">
 <div>task <b id="live-id">-</b> &middot; stage <b id="live-stage">-</b>
  &middot; verdict <span id="live-verdict">pending</span>
  &middot; round <span id="live-round">-</span>
  &middot; <span id="live-follow" class="muted">following the newest task</span></div>
 <ol class="stages" id="live-stages"></ol>
 <div class="muted">on chain: <span id="live-history">-</span></div>
 <div class="grid">
  <div>
   <div>votes: <span id="live-votes" class="mono">-</span></div>
   <div>input: <span id="live-input">-</span></div>
   <div>result commitment: <span id="live-commitment" class="mono">-</span></div>
   <div>closed: <span id="live-closed">-</span></div>
   <h3>Committee</h3>
   <table><thead><tr><th>member</th><th>acknowledged</th><th class="num">stake (ETH)</th>
    </tr></thead><tbody id="live-members"></tbody></table>
  </div>
  <div>
   <h3>Payouts</h3>
   <table><thead><tr><th>account</th><th>as</th><th class="num">amount (ETH)</th></tr>
    </thead><tbody id="live-payouts"></tbody></table>
   <div>slashed: <span id="live-slashed" class="mono">-</span></div>
  </div>
 </div>
</div>

<h2>Throughput and latency</h2>
<div class="grid3">
 <div><div>tasks settled per minute <span class="muted">(failed: red line)</span></div>
  <svg id="chart-tasks" viewBox="0 0 420 190"></svg></div>
 <div><div>input rows processed per minute</div>
  <svg id="chart-rows" viewBox="0 0 420 190"></svg></div>
 <div><div>task latency (s), by stage</div>
  <svg id="chart" viewBox="0 0 420 190"></svg>
  <div class="legend" id="legend"></div></div>
</div>
<div class="muted">rates over the last <span id="window">-</span> s at each
 <span id="bucket">-</span> s step &middot; overall
 <span id="throughput">-</span> tasks/min &middot; <span id="in-flight">0</span> in flight
 &middot; bytes moved are not on chain, so not charted</div>

<h2>Tasks</h2>
<table><thead><tr><th>id</th><th>stage</th><th>verdict</th><th>committee</th>
 <th class="num">rows</th><th class="num">latency (s)</th></tr></thead>
 <tbody id="tasks"></tbody></table>

<h2>Nodes</h2>
<table><thead><tr><th>address</th><th>role</th><th class="num">stake (ETH)</th>
 <th class="num">capacity</th><th class="num">unbonding (ETH)</th>
 <th class="num">datasets owned</th><th class="num">committees</th>
 <th class="num">slashed (ETH)</th><th>endpoint</th></tr></thead>
 <tbody id="nodes"></tbody></table>

<h2>Datasets</h2>
<div class="muted">registry entries only: owner, policy and schema hashes, row count</div>
<table><thead><tr><th>dataset</th><th>owner</th><th>owner role</th>
 <th class="num">owner stake (ETH)</th><th>policy hash</th><th class="num">rows</th>
 <th class="num">version</th><th>revoked</th><th>used by tasks</th></tr></thead>
 <tbody id="datasets"></tbody></table>
"""

_SCRIPT = r"""
"use strict";
const STAGES = ["submitted", "approved", "committee drawn", "running", "settled"];
const COLORS = {"submitted": "#90a4ae", "approved": "#42a5f5", "committee drawn": "#7e57c2",
                "running": "#ffa726", "settled": "#2e7d32", "rejected": "#c62828",
                "failed": "#c62828"};
const SVGNS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const short = (a) => (a && a.length > 14) ? a.slice(0, 8) + "\u2026" + a.slice(-4) : (a || "");
const eth = (wei) => (Number(wei) / 1e18).toFixed(4);
let pinned = new URLSearchParams(location.search).get("task");

async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function rows(tbody, data, cells, decorate) {
  const body = $(tbody);
  body.replaceChildren();
  for (const d of data) {
    const tr = document.createElement("tr");
    for (const c of cells(d)) {
      const td = document.createElement("td");
      if (typeof c === "number") td.className = "num";
      td.textContent = c;
      tr.appendChild(td);
    }
    if (decorate) decorate(tr, d);
    body.appendChild(tr);
  }
}

// ---------------------------------------------------------------- live task
function showLive(t) {
  const live = $("live");
  const history = t.history.map((h) => h.stage);
  live.dataset.task = t.task_id; live.dataset.stage = t.stage;
  live.dataset.verdict = t.verdict || ""; live.dataset.history = history.join(",");
  $("live-id").textContent = t.task_id;
  $("live-stage").textContent = t.stage;
  $("live-round").textContent = t.round;
  const v = $("live-verdict");
  v.textContent = t.verdict || "pending";
  v.className = t.verdict ? "verdict-" + t.verdict : "";
  const at = {};
  for (const h of t.history) if (!(h.stage in at)) at[h.stage] = h;
  const ol = $("live-stages");
  ol.replaceChildren();
  const stages = STAGES.includes(t.stage) ? STAGES : t.passed.filter((s) => s !== t.stage)
    .concat([t.stage]);
  for (const s of stages) {
    const li = document.createElement("li");
    li.textContent = s;
    li.dataset.stage = s;
    const bad = (s === t.stage && (t.stage === "rejected" || t.stage === "failed"));
    li.className = bad ? "bad" : (s === t.stage && !t.verdict) ? "current"
      : (t.passed.includes(s) || s === t.stage) ? "done" : "todo";
    const h = at[s], seen = t.observed[s];
    if (h || seen !== undefined) {
      const small = document.createElement("small");
      small.textContent = (h ? "block " + h.block : "") + (seen !== undefined
        ? (h ? " \u00b7 " : "") + new Date(seen * 1000).toLocaleTimeString() : "");
      li.appendChild(small);
    }
    ol.appendChild(li);
  }
  $("live-history").textContent = t.history.length ? t.history.map((h) => h.stage +
    ("round" in h ? " (round " + h.round + ")" : "") + " @" + h.block).join(" → ") : "-";
  const vt = t.votes;
  $("live-votes").textContent = "owners " + vt.owner_approvals + " approved, validators " +
    eth(vt.approve_wei) + " for / " + eth(vt.reject_wei) + " against of " +
    eth(vt.validator_total_wei) + " ETH, " + vt.reveals + " seeds revealed";
  $("live-input").textContent = t.datasets.length + " dataset(s)" +
    (t.rows === null ? "" : ", " + t.rows + " rows");
  $("live-commitment").textContent = t.result_commitment || "-";
  $("live-closed").textContent = t.closed_reason || "-";
  rows("live-members", t.members || [], (m) => [m.address, m.acknowledged ? "yes" : "not yet",
    Number(m.stake_eth.toFixed(3))]);
  const role = (a) => t.committee.includes(a) ? "committee"
    : a === t.requester ? "requester (refund)" : "data owner";
  const paid = (t.payouts || []).filter((p) => !p.error);
  rows("live-payouts", paid, (p) => [p.account, role(p.account), Number(eth(p.amount_wei))]);
  const err = (t.payouts || []).find((p) => p.error);
  if (err) rows("live-payouts", [err], (p) => [p.error, "", ""]);
  $("live-slashed").textContent = (t.slashed && t.slashed.length) ? t.slashed.map(
    (s) => short(s.member) + " " + eth(s.amount_wei)).join(", ") : "-";
}

async function liveTick() {
  let next = 1000;
  try {
    const t = (await get("/api/live" + (pinned ? "?task=" + pinned : ""))).task;
    $("live-follow").textContent = pinned ? "pinned (click a task to change)"
      : "following the newest task";
    if (!t) next = 250;  // pick up a new task soon
    else { showLive(t); if (!t.verdict) next = 100; }
  } catch (e) {
    $("status").textContent = "error: " + e.message;
  }
  setTimeout(liveTick, next);
}

// ---------------------------------------------------------------- charts
function svg(id) {
  const root = $(id);
  root.replaceChildren();
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    root.appendChild(e); return e;
  };
  return el;
}

const W = 420, H = 190, L = 44, B = 24, T = 8;

function axes(el, max, unit) {
  el("line", {x1: L, y1: H - B, x2: W - 4, y2: H - B, stroke: "#999"});
  el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"});
  for (const f of [0, 0.5, 1]) {
    const y = H - B - (H - B - T) * f;
    el("text", {x: L - 4, y: y + 3, "font-size": 10, "text-anchor": "end"},
       (max * f).toFixed(max * f >= 10 || f === 0 ? 0 : 1));
    if (f) el("line", {x1: L, y1: y, x2: W - 4, y2: y, stroke: "#eee"});
  }
  el("text", {x: 2, y: T + 8, "font-size": 9, fill: "#6b7385"}, unit);
}

function timeSeries(id, series, bucket, key, redKey, color) {
  // a rate over time: filled area (and a red line for failures), a dot per bucket in
  // which a task finished, clock times under the axis
  const el = svg(id);
  const max = Math.max(1, ...series.map((p) => Math.max(p[key], redKey ? p[redKey] : 0)));
  axes(el, max, "/min");
  if (!series.length) return;
  const n = series.length;
  const x = (i) => L + (W - L - 6) * i / n;
  const y = (v) => H - B - (H - B - T) * v / max;
  const line = (k) => series.map((p, i) => x(i) + "," + y(p[k]) + " " + x(i + 1) + "," +
                                  y(p[k])).join(" ");
  el("polygon", {points: x(0) + "," + (H - B) + " " + line(key) + " " + x(n) + "," + (H - B),
                 fill: color, "fill-opacity": 0.25, stroke: color});
  if (redKey && series.some((p) => p[redKey] > 0))
    el("polyline", {points: line(redKey), fill: "none", stroke: "#c62828"});
  series.forEach((p, i) => {
    if (!(p.settled || p.failed)) return;
    const c = el("circle", {cx: (x(i) + x(i + 1)) / 2, cy: y(p[key]), r: 3,
                            fill: p.failed && !p.settled ? "#c62828" : color});
    const title = document.createElementNS(SVGNS, "title");
    title.textContent = new Date(p.t * 1000).toLocaleTimeString() + ": " + p.settled +
      " settled, " + p.failed + " failed; " + p[key].toFixed(1) + "/min";
    c.appendChild(title);
  });
  const label = (i) => new Date((series[0].t + i * bucket) * 1000).toLocaleTimeString();
  el("text", {x: L, y: H - 8, "font-size": 10}, label(0));
  el("text", {x: W - 4, y: H - 8, "font-size": 10, "text-anchor": "end"}, label(n));
}

function latencyChart(stats) {
  const el = svg("chart");
  const pts = stats.finished.filter((f) => f.latency_s !== null).slice(-20);
  const max = Math.max(1, ...pts.map((p) => p.latency_s));
  axes(el, max, "s");
  if (!pts.length) {
    el("text", {x: L + 10, y: H / 2, "font-size": 12, fill: "#6b7385"},
       "no finished task observed yet");
    return;
  }
  const bw = Math.min(40, (W - L - 10) / pts.length - 4);
  pts.forEach((p, i) => {
    const x = L + 4 + i * (bw + 4);
    let base = H - B;
    const parts = Object.entries(p.stage_s);
    if (!parts.length) parts.push([p.stage, p.latency_s]);  // only block times known
    for (const [stage, s] of parts) {
      const h = (H - B - T) * s / max;
      const r = el("rect", {x: x, y: base - h, width: bw, height: h,
                            fill: COLORS[stage] || "#999"});
      const title = document.createElementNS(SVGNS, "title");
      title.textContent = "#" + p.task_id + " " + stage + ": " + s.toFixed(2) + " s";
      r.appendChild(title);
      base -= h;
    }
    el("text", {x: x, y: H - 8, "font-size": 10}, "#" + p.task_id);
  });
}

function legend() {
  const box = $("legend");
  for (const s of STAGES.slice(0, 4)) {
    const span = document.createElement("span"), i = document.createElement("i");
    i.style.background = COLORS[s];
    span.append(i, "in " + s);
    box.appendChild(span);
  }
}

// ---------------------------------------------------------------- the rest
let slow = 0;
async function tick() {
  try {
    const tasks = await get("/api/tasks?limit=50");
    rows("tasks", tasks, (t) => [t.task_id, t.stage, t.verdict || "-",
      t.committee.map(short).join(" "), t.rows === null ? "-" : t.rows,
      t.latency_s === null ? "-" : Number(t.latency_s.toFixed(2))], (tr, t) => {
        if (String(t.task_id) === String(pinned)) tr.className = "pinned";
        tr.addEventListener("click", () => {
          pinned = String(t.task_id);
          history.replaceState(null, "", "?task=" + pinned);
        });
      });
    const stats = await get("/api/stats");
    timeSeries("chart-tasks", stats.series, stats.bucket_s, "tasks_per_min",
               "failed_per_min", "#2e7d32");
    timeSeries("chart-rows", stats.series, stats.bucket_s, "rows_per_min", null, "#1565c0");
    latencyChart(stats);
    $("bucket").textContent = stats.bucket_s;
    $("window").textContent = stats.window_s;
    $("in-flight").textContent = stats.in_flight;
    $("throughput").textContent = stats.tasks_per_minute === null ? "-"
      : stats.tasks_per_minute.toFixed(2);
    if (slow++ % 5 === 0) {
      rows("nodes", await get("/api/nodes"), (n) => [n.address, n.role,
        Number(n.stake_eth.toFixed(3)), n.capacity, Number(eth(n.unbonding_wei)),
        n.datasets_owned, n.committees_served, Number(eth(n.slashed_wei)), n.endpoint]);
      rows("datasets", await get("/api/datasets"), (d) => [short(d.dataset_id), d.owner,
        d.owner_role, Number(d.owner_stake_eth.toFixed(3)), short(d.policy_hash), d.rows,
        d.version, d.revoked ? "yes" : "no", d.tasks.length ? d.tasks.join(", ") : "-"]);
    }
    $("status").textContent = "updated " + new Date().toLocaleTimeString() +
      (stats.events_error ? " (" + stats.events_error + ")" : "");
  } catch (e) {
    $("status").textContent = "error: " + e.message;
  }
}
legend();
tick();
setInterval(tick, 1000);
liveTick();
"""

PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>metisnet explorer</title>\n"
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    f"<style>{_STYLE}</style>\n</head>\n<body>{_BODY}<script>{_SCRIPT}</script>\n"
    "</body>\n</html>\n"
)
