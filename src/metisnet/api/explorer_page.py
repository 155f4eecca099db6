"""The explorer's one page: static HTML and vanilla JavaScript, no build step, no assets.

Every value from the chain is put into the page with ``textContent`` (never as HTML), so a
node's endpoint string cannot inject markup. The page polls ``/api`` every second.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>metisnet explorer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
 h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
 .muted { color: #6b7385; } code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
 table { border-collapse: collapse; background: #fff; width: 100%; }
 th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6ec; }
 th { background: #eef0f4; font-weight: 600; }
 #live { background: #fff; border: 1px solid #d8dce4; border-radius: 6px; padding: .8em 1em; }
 ol.stages { list-style: none; display: flex; gap: .4em; padding: 0; margin: .6em 0;
             flex-wrap: wrap; }
 ol.stages li { padding: .3em .8em; border-radius: 1em; background: #e3e6ec; color: #6b7385; }
 ol.stages li.done { background: #2e7d32; color: #fff; }
 ol.stages li.current { background: #1565c0; color: #fff; }
 ol.stages li.bad { background: #c62828; color: #fff; }
 .verdict-verified { color: #2e7d32; font-weight: 700; }
 .verdict-rejected, .verdict-failed { color: #c62828; font-weight: 700; }
 .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
 svg { background: #fff; border: 1px solid #d8dce4; }
</style>
</head>
<body>
<h1>metisnet explorer</h1>
<div class="muted">read only; chain state refreshed every second &middot;
 <span id="status">loading</span></div>

<h2>Live task</h2>
<div id="live" data-task="" data-stage="" data-verdict="">
 <div>task <b id="live-id">-</b> &middot; stage <b id="live-stage">-</b>
  &middot; verdict <span id="live-verdict">pending</span></div>
 <ol class="stages" id="live-stages"></ol>
 <div>committee (<span id="live-acks">0</span> acknowledged):
  <span id="live-committee" class="mono">-</span></div>
 <div>result commitment: <span id="live-commitment" class="mono">-</span></div>
 <div>payouts: <span id="live-payouts" class="mono">-</span></div>
 <div>credits not yet withdrawn: <span id="live-credits" class="mono">-</span></div>
 <div class="muted">observed stages: <span id="live-observed">-</span></div>
</div>

<div class="grid">
 <div><h2>Task latency (s)</h2><svg id="chart" width="460" height="180"></svg>
  <div class="muted">throughput: <span id="throughput">-</span> tasks/min</div></div>
 <div><h2>Tasks</h2><table><thead><tr><th>id</th><th>stage</th><th>verdict</th>
  <th>committee</th><th>latency</th></tr></thead><tbody id="tasks"></tbody></table></div>
</div>

<h2>Nodes</h2>
<table><thead><tr><th>address</th><th>role</th><th>stake (ETH)</th><th>endpoint</th>
 </tr></thead><tbody id="nodes"></tbody></table>

<h2>Datasets</h2>
<table><thead><tr><th>dataset</th><th>owner</th><th>policy hash</th><th>rows</th>
 <th>revoked</th></tr></thead><tbody id="datasets"></tbody></table>

<script>
"use strict";
const STAGES = ["submitted", "approved", "committee drawn", "running", "settled"];
const $ = (id) => document.getElementById(id);
const short = (a) => (a && a.length > 14) ? a.slice(0, 8) + "\\u2026" + a.slice(-4) : (a || "");
const pinned = new URLSearchParams(location.search).get("task");

async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function rows(tbody, data, cells) {
  const body = $(tbody);
  body.replaceChildren();
  for (const d of data) {
    const tr = document.createElement("tr");
    for (const c of cells(d)) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function showLive(t) {
  const live = $("live");
  live.dataset.task = t.task_id; live.dataset.stage = t.stage;
  live.dataset.verdict = t.verdict || "";
  $("live-id").textContent = t.task_id;
  $("live-stage").textContent = t.stage;
  const v = $("live-verdict");
  v.textContent = t.verdict || "pending";
  v.className = t.verdict ? "verdict-" + t.verdict : "";
  const ol = $("live-stages");
  ol.replaceChildren();
  const stages = STAGES.includes(t.stage) ? STAGES : t.passed.concat([t.stage]);
  for (const s of stages) {
    const li = document.createElement("li");
    li.textContent = s;
    li.dataset.stage = s;
    const bad = (s === t.stage && (t.stage === "rejected" || t.stage === "failed"));
    li.className = bad ? "bad" : (s === t.stage && !t.verdict) ? "current"
      : (t.passed.includes(s) || s === t.stage) ? "done" : "todo";
    ol.appendChild(li);
  }
  $("live-acks").textContent = t.acks;
  $("live-committee").textContent = t.committee.length ? t.committee.map(short).join(", ") : "-";
  $("live-commitment").textContent = t.result_commitment || "-";
  $("live-payouts").textContent = (t.payouts && t.payouts.length)
    ? t.payouts.map((p) => p.error || (short(p.account) + " " +
        (Number(p.amount_wei) / 1e18).toFixed(4))).join(", ") : "-";
  $("live-credits").textContent = t.credits ? Object.entries(t.credits).map(
    ([a, v]) => short(a) + " " + (Number(v) / 1e18).toFixed(4)).join(", ") : "-";
  $("live-observed").textContent = Object.keys(t.observed).join(" \\u2192 ") || "-";
}

function chart(stats) {
  const svg = $("chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const pts = stats.finished.filter((f) => f.latency_s !== null).slice(-20);
  const W = 460, H = 180, pad = 30;
  const max = Math.max(1, ...pts.map((p) => p.latency_s));
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e); return e;
  };
  el("line", {x1: pad, y1: H - pad, x2: W - 5, y2: H - pad, stroke: "#999"});
  el("line", {x1: pad, y1: 5, x2: pad, y2: H - pad, stroke: "#999"});
  el("text", {x: 2, y: 14, "font-size": 10}, max.toFixed(1));
  el("text", {x: 2, y: H - pad, "font-size": 10}, "0");
  const bw = pts.length ? Math.min(40, (W - pad - 10) / pts.length - 4) : 0;
  pts.forEach((p, i) => {
    const h = (H - pad - 10) * p.latency_s / max, x = pad + 4 + i * (bw + 4);
    el("rect", {x: x, y: H - pad - h, width: bw, height: h,
                fill: p.stage === "settled" ? "#2e7d32" : "#c62828"});
    el("text", {x: x, y: H - pad + 12, "font-size": 10}, "#" + p.task_id);
  });
  if (!pts.length) el("text", {x: pad + 10, y: H / 2, "font-size": 12, fill: "#6b7385"},
                      "no finished task observed yet");
  $("throughput").textContent = stats.tasks_per_minute === null ? "-"
    : stats.tasks_per_minute.toFixed(2);
}

let slow = 0;
async function tick() {
  try {
    const tasks = await get("/api/tasks?limit=50");
    rows("tasks", tasks, (t) => [t.task_id, t.stage, t.verdict || "-",
      t.committee.map(short).join(" "), t.latency_s === null ? "-" : t.latency_s.toFixed(2)]);
    const id = pinned || (tasks.length ? tasks[0].task_id : null);
    if (id !== null) showLive(await get("/api/tasks/" + id));
    chart(await get("/api/stats"));
    if (slow++ % 5 === 0) {
      rows("nodes", await get("/api/nodes"), (n) => [n.address, n.role,
        n.stake_eth.toFixed(3), n.endpoint]);
      rows("datasets", await get("/api/datasets"), (d) => [short(d.dataset_id),
        d.owner, short(d.policy_hash), d.rows, d.revoked ? "yes" : "no"]);
    }
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("status").textContent = "error: " + e.message;
  }
}
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
"""
