// The operator's dashboard: reads the service's own API with the admin key kept in this tab's
// session storage and sent as a bearer header (no cookies). Every value from the service is put
// in the page as text (textContent), never as HTML.
"use strict";

const KEY = "recloop.adminKey";
const COLORS = ["#2f6fdf", "#e0662f", "#2a9d5c", "#9b4dca", "#c9a227", "#d6336c", "#17a2b8", "#6c757d"];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class AuthError extends Error {}

async function api(path, method) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  const r = await fetch(path, { method: method || "GET", headers, credentials: "omit" });
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 || r.status === 403) throw new AuthError(body?.error?.message || "refused");
  if (!r.ok) {
    const e = new Error(body?.error?.message || r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

const enc = encodeURIComponent;
const fmt = (v, digits) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits ?? 3));
const when = (s) => (s ? new Date(s).toLocaleString() : "–");

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) =>
      c instanceof Node ? el("td", {}, c) : el("td", typeof c === "number" ? { class: "num" } : {}, c))))));
}

function card(label, value) {
  return el("div", { class: "card" }, el("div", {}, label), el("div", { class: "value" }, value));
}

// A uPlot chart of aligned series over `xs`; `opts.time` false for a categorical x axis
// (`opts.names` labels it), `opts.points` to draw markers instead of lines.
function chart(parent, title, xs, series, opts) {
  opts = opts || {};
  const box = el("div", { class: "chart", "data-title": title });
  parent.append(box);
  // What each chart draws, by title: for the browser test and for anyone at the console.
  window.recloopCharts = window.recloopCharts || {};
  window.recloopCharts[title] = { xs, series: series.map((s) => ({ label: s.label, values: s.values })) };
  if (!xs.length || !series.length) {
    box.append(el("h3", {}, title), el("p", { class: "empty" }, "nothing yet"));
    return;
  }
  const spec = series.map((s, i) => {
    const color = COLORS[i % COLORS.length];
    const line = { label: s.label, stroke: color, width: 2, spanGaps: true, points: { show: true, size: 5 } };
    if (opts.bars) return { ...line, fill: color + "99", paths: uPlot.paths.bars({ size: [0.6] }) };
    if (opts.points) return { ...line, paths: () => null, points: { show: true, size: 9, fill: color } };
    return line;
  });
  const axes = [{}, {}];
  if (opts.names) axes[0] = { values: (u, vals) => vals.map((v) => opts.names[v] ?? "") };
  const x = { time: opts.time !== false };
  // A time chart spans the range asked for, however few buckets hold counts.
  if (opts.range) x.range = () => opts.range;
  new uPlot({ title, width: 560, height: 240, series: [{}, ...spec], axes, scales: { x } },
    [xs, ...series.map((s) => s.values)], box);
}

// /v1/stats answers as aligned columns: every bucket time, and per series its values.
function columns(stats) {
  const times = [...new Set(stats.series.flatMap((s) => s.points.map((p) => p.at)))].sort();
  const index = new Map(times.map((t, i) => [t, i]));
  const values = (s) => {
    const out = new Array(times.length).fill(0);
    for (const p of s.points) out[index.get(p.at)] += p.value;
    return out;
  };
  const pick = (name, filter) => stats.series.filter((s) => s.name === name && (!filter || filter(s.labels)));
  const sum = (list) => {
    const out = new Array(times.length).fill(0);
    for (const s of list) values(s).forEach((v, i) => (out[i] += v));
    return out;
  };
  return { xs: times.map((t) => Date.parse(t) / 1000), values, pick, sum };
}

const RANGES = { minute: "the last hour, per minute", hour: "the last 48 hours, per hour", day: "the last 30 days, per day" };

async function overview(main) {
  const step = sessionStorage.getItem("recloop.step") || "minute";
  const select = el("select", { id: "step", onchange: (e) => { sessionStorage.setItem("recloop.step", e.target.value); route(); } },
    ...Object.entries(RANGES).map(([k, v]) => { const o = el("option", { value: k }, v); if (k === step) o.selected = true; return o; }));
  main.append(el("h2", {}, "Overview"), select);
  const [stats, versions] = await Promise.all([api("/v1/stats?step=" + step), api("/v1/model/versions")]);
  let model = null;
  try { model = await api("/v1/model"); } catch (e) { if (e instanceof AuthError) throw e; }
  const c = columns(stats);
  const range = { range: [Date.parse(stats.from) / 1000, Date.parse(stats.to) / 1000] };
  const cards = el("div", { class: "cards", id: "in-service" });
  cards.append(card("Model in service", model ? `version ${model.version}` : "none yet"));
  if (model) {
    cards.append(card("Algorithm", model.algorithm), card("NDCG@10 (holdout)", fmt(model.metrics?.ndcg_at_10)),
      card("Trained", when(model.trained_at)));
  }
  main.append(cards);
  const charts = el("div", { class: "charts" });
  main.append(charts);
  const events = c.pick("events");
  chart(charts, "Events by type", c.xs, events.map((s) => ({ label: s.labels.type, values: c.values(s) })), range);
  // Rates per model version and arm: credited responses over recorded responses, per bucket.
  const shown = c.pick("impressions");
  const rate = (type) => shown.map((s) => {
    const credited = c.sum(c.pick("credited", (l) => l.version === s.labels.version && l.arm === s.labels.arm && l.type === type));
    const n = c.values(s);
    return { label: `v${s.labels.version} ${s.labels.arm}`, values: n.map((v, i) => (v > 0 ? credited[i] / v : null)) };
  });
  chart(charts, "Click-through by version and arm", c.xs, rate("click"), range);
  chart(charts, "Purchase rate by version and arm", c.xs, rate("purchase"), range);
  const requests = c.sum(c.pick("requests"));
  const seconds = c.sum(c.pick("request_seconds"));
  chart(charts, "Requests per bucket", c.xs, [{ label: "requests", values: requests }], range);
  chart(charts, "Mean latency (ms)", c.xs, [{ label: "ms", values: requests.map((n, i) => (n > 0 ? (1000 * seconds[i]) / n : null)) }], range);
  trainings(charts, versions.versions);
}

// Every training on a timeline: its seconds, one series per outcome.
function trainings(parent, versions) {
  const sorted = [...versions].sort((a, b) => Date.parse(a.trained_at) - Date.parse(b.trained_at));
  const xs = sorted.map((v) => Date.parse(v.trained_at) / 1000);
  const statuses = [...new Set(sorted.map((v) => v.status))];
  chart(parent, "Trainings (seconds) by outcome", xs,
    statuses.map((st) => ({ label: st, values: sorted.map((v) => (v.status === st ? v.training_seconds : null)) })),
    { points: true, range: [Math.min(...xs) - 1800, Math.max(...xs) + 1800] });
}

async function models(main) {
  main.append(el("h2", {}, "Models"));
  const { versions } = await api("/v1/model/versions");
  const act = async (path) => { await api(path, "POST"); route(); };
  const actions = (v) => {
    const box = el("span", {});
    if (v.status === "accepted" && !v.in_service) {
      box.append(el("button", { onclick: () => act(`/v1/model/versions/${v.version}/activate`) }, "Roll back to this"),
        el("button", { onclick: () => act(`/v1/model/versions/${v.version}/activate?pin=true`) }, "…and pin"));
    }
    if (v.pinned) box.append(el("button", { onclick: () => act("/v1/model/unpin") }, "Unpin"));
    if (v.status === "challenger") {
      box.append(el("button", { onclick: () => act("/v1/model/challenger/promote") }, "Promote"),
        el("button", { onclick: () => act("/v1/model/challenger/retire") }, "Retire"));
    }
    return box;
  };
  main.append(table(["version", "status", "serving", "algorithm", "NDCG@10", "recall@20", "seconds", "trained", "online CTR", "gate", ""],
    versions.map((v) => [v.version, v.status + (v.pinned ? " (pinned)" : ""), v.in_service ? "yes" : "", v.algorithm,
      fmt(v.metrics?.ndcg_at_10), fmt(v.metrics?.recall_at_20), fmt(v.training_seconds, 1), when(v.trained_at),
      v.online ? `${fmt(v.online.ctr)} of ${v.online.impressions}` : "–", v.reason, actions(v)]),
    { id: "versions" }));
  const charts = el("div", { class: "charts" });
  main.append(charts);
  const shown = versions.find((v) => v.in_service) || versions[0];
  const candidates = shown?.metrics?.selection || [];
  chart(charts, `Candidates version ${shown?.version ?? ""} compared (validation NDCG@10)`, candidates.map((_, i) => i),
    [{ label: "NDCG@10", values: candidates.map((t) => t.ndcg_at_10) }],
    { time: false, bars: true, names: candidates.map((t) => t.config.split("(")[0] + " " + (t.config.match(/recency=([\d.]+)/)?.[1] ?? "")) });
  const arms = versions.filter((v) => v.in_service && v.online);
  chart(charts, "Champion against challenger (online rates)", [0, 1],
    arms.map((v) => ({ label: `v${v.version} ${v.status}`, values: [v.online.ctr, v.online.purchase_rate] })),
    { time: false, bars: true, names: ["click-through", "purchase rate"] });
}

function lookup(main, label, id, run) {
  const input = el("input", { id, "aria-label": label, value: sessionStorage.getItem("recloop." + id) || "" });
  const out = el("div", { id: id + "-result" });
  const form = el("form", { class: "lookup", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem("recloop." + id, input.value);
    out.replaceChildren();
    run(input.value, out).catch((err) => {
      if (err instanceof AuthError) return login(err.message);
      out.append(el("p", { class: "error" }, err.message));
    });
  } }, el("label", {}, label + " ", input), el("button", { type: "submit" }, "Look up"));
  main.append(form, out);
  if (input.value) form.requestSubmit();
}

async function users(main) {
  main.append(el("h2", {}, "Users"));
  lookup(main, "User id", "user", async (user, out) => {
    const [exported, recs] = await Promise.all([
      api(`/v1/users/${enc(user)}/export`).catch((e) => { if (e.status === 404) return { events: [], responses: [] }; throw e; }),
      api(`/v1/users/${enc(user)}/recommendations?n=10&explain=true`),
    ]);
    out.append(el("h3", {}, `Recommendations (${recs.source}, version ${recs.model_version ?? "–"})`));
    out.append(table(["item", "score", "reason", "because"], recs.items.map((it) => [it.item_id, fmt(it.score),
      it.reason || "", el("span", { class: "because" }, (it.because || []).map((b) => `${b.type} ${b.item_id} ${(100 * b.share).toFixed(0)}%`).join(", "))]),
    { id: "recommendations" }));
    out.append(el("h3", {}, `History (${exported.events.length} events)`));
    out.append(table(["time", "type", "item"], [...exported.events].reverse().map((e) => [when(e.timestamp), e.type, e.item_id]), { id: "history" }));
    const ignored = exported.responses.filter((r) => !r.credited || r.credited.length === 0);
    out.append(el("h3", {}, `Shown and not acted on (${ignored.length} responses)`));
    out.append(table(["shown", "version", "items"], ignored.slice(-20).reverse().map((r) => [when(r.shown_at), r.model_version, r.items.join(", ")]), { id: "ignored" }));
  });
}

async function items(main) {
  main.append(el("h2", {}, "Items"));
  lookup(main, "Item id", "item", async (item, out) => {
    const entry = await api(`/v1/items/${enc(item)}`).catch((e) => { if (e.status === 404) return null; throw e; });
    const similar = await api(`/v1/items/${enc(item)}/similar?n=10&explain=true`).catch((e) => { if (e.status === 404) return null; throw e; });
    if (!entry && !similar) { out.append(el("p", {}, "Neither the catalog nor the model knows this item.")); return; }
    const cards = el("div", { class: "cards" });
    cards.append(card("Title", el("span", { id: "item-title" }, entry?.title ?? "–")),
      card("Categories", (entry?.categories || []).join(", ") || "–"),
      card("Available", entry ? (entry.available ? "yes" : "no") : "not in the catalog"));
    out.append(cards);
    if (entry?.attributes && Object.keys(entry.attributes).length) {
      out.append(table(["attribute", "value"], Object.entries(entry.attributes).map(([k, v]) => [k, JSON.stringify(v)])));
    }
    out.append(el("h3", {}, "Similar items"));
    out.append(table(["item", "score", "users of both"], (similar?.items || []).map((s) => [s.item_id, fmt(s.score), s.co_users ?? "–"]), { id: "similar" }));
  });
}

async function catalogue(main) {
  main.append(el("h2", {}, "Catalogue"));
  const popular = await api("/v1/popular?n=20");
  const charts = el("div", { class: "charts" });
  main.append(charts);
  chart(charts, "Popular now (recent popularity score)", popular.items.map((_, i) => i),
    [{ label: "score", values: popular.items.map((it) => it.score) }],
    { time: false, bars: true, names: popular.items.map((it) => it.item_id) });
  main.append(table(["rank", "item", "score"], popular.items.map((it, i) => [i + 1, it.item_id, fmt(it.score)]), { id: "popular" }));
}

const PAGES = { overview, models, users, items, catalogue };

function login(message) {
  document.getElementById("page").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = sessionStorage.getItem(KEY) ? message : "";
  sessionStorage.removeItem(KEY);
  document.getElementById("key").focus();
}

async function route() {
  const name = (location.hash || "#overview").slice(1);
  const page = PAGES[name] || overview;
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.hash === "#" + name));
  const main = document.getElementById("page");
  main.replaceChildren();
  window.recloopCharts = {};
  delete document.body.dataset.ready;
  try {
    // Every page asks for the admin key when one is set, also those whose reads are open.
    await api("/v1/stats?step=day");
    await page(main);
    document.getElementById("login").hidden = true;
    document.body.dataset.ready = name;
  } catch (e) {
    if (e instanceof AuthError) login(e.message);
    else main.append(el("p", { class: "error" }, e.message));
  }
}

document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key").value);
  route();
});
document.getElementById("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
window.addEventListener("hashchange", route);
route();
