// The admin dashboard: renders /dashboard/events (Server-Sent Events, one document per update)
// and posts the explain form to /explain. Text only goes in with textContent: paths, hosts
// and headers in the document come from clients and must never become markup.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const num = (value, digits = 1) =>
  value === null || value === undefined ? "—" : Number(value).toFixed(digits);
const pct = (value) => (value === null || value === undefined ? "—" : `${Number(value).toFixed(1)} %`);

function age(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function duration(seconds) {
  const sign = seconds < 0 ? "-" : "";
  const s = Math.abs(seconds);
  if (s >= 86400) return `${sign}${(s / 86400).toFixed(1)} d`;
  if (s >= 3600) return `${sign}${(s / 3600).toFixed(1)} h`;
  return `${sign}${Math.round(s)} s`;
}

const STATE_CLASS = { healthy: "ok", failing: "warn", unhealthy: "bad", ejected: "bad" };

function renderHeader(doc) {
  $("tier").textContent = `${doc.tier} gateway`;
  const where = [doc.node.cluster, doc.node.locality].filter(Boolean).join(" · ");
  $("node").textContent = where;
  const readiness = $("readiness");
  const state = doc.draining ? "draining" : doc.ready ? "ready" : "starting";
  readiness.textContent = state;
  readiness.className = `badge ${doc.draining ? "warn" : doc.ready ? "ok" : "bad"}`;
  $("updated").textContent = `updated ${new Date(doc.now * 1000).toLocaleTimeString()}`;
}

function renderConfig(doc) {
  $("version").textContent = doc.version || "—";
  const reload = doc.reload;
  const target = $("reload");
  const diagnostics = $("diagnostics");
  if (!reload) {
    target.textContent = "—";
    diagnostics.hidden = true;
  } else {
    const when = age(doc.now - reload.at);
    const result = reload.accepted
      ? reload.changed ? "accepted" : "accepted (unchanged)"
      : `rejected: still serving ${reload.version}`;
    target.replaceChildren(
      el("span", { class: `badge ${reload.accepted ? "ok" : "bad"}`, id: "reload-result" }, result),
      ` ${when} (${new Date(reload.at * 1000).toLocaleString()})`,
    );
    diagnostics.hidden = reload.diagnostics.length === 0;
    diagnostics.textContent = reload.diagnostics.join("\n");
  }
  $("reloads").textContent = `${doc.reloads.success} accepted, ${doc.reloads.rejected} rejected`;
}

function shareCell(share) {
  const bar = el("div", { class: "bar" });
  bar.style.width = `${Math.min(100, share || 0)}%`;
  return el("td", { class: "barcell" }, bar);
}

function renderTraffic(doc) {
  const rate = doc.rate;
  $("rate-window").textContent = rate.window ? `(rates over the last ${num(rate.window)} s)` : "";
  $("rps").textContent = num(rate.requests_per_second);
  $("upstream-rps").textContent = num(rate.upstream_per_second);
  $("requests-total").textContent = rate.requests_total;
  const byKey = new Map(doc.clusters.map((c) => [c.key, c]));
  const rows = [];
  for (const dest of doc.destinations) {
    rows.push(
      el("tr", { class: "destination", "data-destination": dest.service },
        el("td", {}, dest.service),
        el("td", { class: "num", "data-field": "rps" }, num(dest.rps)),
        el("td", { class: "num", "data-field": "share" }, pct(dest.share)),
        shareCell(dest.share),
        el("td", { class: "num", "data-field": "total" }, dest.total)),
    );
    for (const key of dest.clusters) {
      const c = byKey.get(key);
      const name = c.subset ? `subset ${c.subset}` : "(all endpoints)";
      rows.push(
        el("tr", { class: "subcluster", "data-cluster": c.key, "data-service": c.service,
                   "data-subset": c.subset || "" },
          el("td", { title: c.key }, name, " ", el("code", { class: "muted" }, c.key)),
          el("td", { class: "num", "data-field": "rps" }, num(c.rps)),
          el("td", { class: "num", "data-field": "destination_share" }, pct(c.destination_share)),
          shareCell(c.destination_share),
          el("td", { class: "num", "data-field": "total" }, c.total)),
      );
    }
  }
  $("split").tBodies[0].replaceChildren(...rows);
}

function probeText(probe) {
  if (!probe) return "—";
  const last = probe.last_error || probe.last_status;
  return `${last} (${probe.successes} ok / ${probe.failures} failed in a row)`;
}

function breakers(cb) {
  const limit = (r) => (r.overflow ? `, ${r.overflow} overflowed` : "");
  return `requests ${cb.active_requests}${limit(cb.requests)} · pending ${cb.pending_requests.count}` +
    `${limit(cb.pending_requests)} · connections ${cb.open_connections}${limit(cb.connections)}`;
}

function renderClusters(doc) {
  const cards = doc.clusters.map((c) => {
    const levels = el("table", { class: "priorities" },
      el("thead", {}, el("tr", {}, ...["priority", "healthy / hosts", "availability", "load",
                                       "panic"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...c.priorities.map((p) =>
        el("tr", { "data-priority": p.priority },
          el("td", {}, `P${p.priority}`),
          el("td", { class: "num" }, `${p.healthy} / ${p.hosts}`),
          el("td", { class: "num" }, `${p.availability} %`),
          el("td", { class: "num", "data-field": "load" }, `${p.load} %`),
          el("td", {}, p.panic ? el("span", { class: "badge bad" }, "panic") : "no")))));
    const hosts = el("table", { class: "hosts" },
      el("thead", {}, el("tr", {}, ...["host", "state", "priority", "locality", "active",
                                       "req/s", "requests", "last health check"]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, ...c.hosts.map((h) =>
        el("tr", { "data-host": `${h.address}:${h.port}`, "data-state": h.state },
          el("td", {}, el("code", {}, `${h.address}:${h.port}`), h.hostname ? ` ${h.hostname}` : ""),
          el("td", {}, el("span", { class: `badge ${STATE_CLASS[h.state]}`, "data-field": "state" },
                          h.state)),
          el("td", { class: "num" }, `P${h.priority}`),
          el("td", {}, h.locality || "—"),
          el("td", { class: "num", "data-field": "active" }, h.active_requests),
          el("td", { class: "num" }, num(h.rps)),
          el("td", { class: "num" }, h.total_requests),
          el("td", {}, probeText(h.health_check))))));
    const healthy = c.hosts.filter((h) => h.state === "healthy").length;
    return el("div", { class: "cluster", "data-cluster": c.key },
      el("div", { class: "cluster-head" },
        el("h3", {}, el("code", {}, c.key)),
        el("span", { class: "muted" }, `${healthy}/${c.hosts.length} hosts healthy`),
        c.total_panic ? el("span", { class: "badge bad" }, "total panic") : null,
        el("span", { class: "muted" }, breakers(c.circuit_breakers))),
      levels, hosts);
  });
  $("cluster-list").replaceChildren(...cards);
}

function renderErrors(doc) {
  const flags = Object.entries(doc.response_flags).map(([f, n]) => `${f} ${n}`).join(", ");
  $("flag-totals").textContent = flags ? `response flags since start: ${flags}` : "no response flags since start";
  const rows = doc.errors.map((e) =>
    el("tr", { "data-flags": e.flags, "data-status": e.status },
      el("td", {}, `${num(e.age)} s`),
      el("td", { class: "num" }, e.status),
      el("td", {}, el("code", {}, e.flags)),
      el("td", {}, el("code", {}, `${e.method} ${e.authority}${e.path}`)),
      el("td", {}, e.cluster || "—"),
      el("td", {}, e.upstream_host || "—"),
      el("td", {}, e.route || "—")));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "none")));
  $("error-table").tBodies[0].replaceChildren(...rows);
}

function renderListeners(doc) {
  const rows = [];
  for (const ls of doc.listeners) {
    for (const s of ls.servers) {
      const cert = s.certificate;
      const left = cert ? cert.expires_in_seconds : null;
      const cls = left === null ? "" : left < 0 ? "bad" : left < 14 * 86400 ? "warn" : "ok";
      rows.push(el("tr", { "data-listener": ls.name },
        el("td", {}, ls.name),
        el("td", {}, el("code", {}, `${ls.bind}:${ls.port}`)),
        el("td", {}, ls.protocol),
        el("td", {}, s.hosts.join(", ")),
        el("td", {}, s.tls_mode || "—"),
        el("td", {}, cert ? el("code", { title: cert.file }, cert.file.split("/").slice(-2).join("/")) : "—"),
        el("td", {}, cert ? el("span", { class: `badge ${cls}`, title: new Date(cert.not_after * 1000).toISOString() },
                               duration(left)) : "—")));
    }
  }
  $("listener-table").tBodies[0].replaceChildren(...rows);
}

function render(doc) {
  renderHeader(doc);
  renderConfig(doc);
  renderTraffic(doc);
  renderClusters(doc);
  renderErrors(doc);
  renderListeners(doc);
}

function connect() {
  const status = $("connection");
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "badge ok";
  });
  source.addEventListener("error", () => {
    status.textContent = "reconnecting";
    status.className = "badge warn";
  });
  source.addEventListener("state", (event) => render(JSON.parse(event.data)));
}

function explainSummary(result) {
  const lines = [];
  if (!result.route) {
    lines.push(el("p", { class: "error" }, result.reason || "no route"));
    return lines;
  }
  lines.push(el("p", {}, "route ", el("code", { id: "explain-route" }, result.route),
    ` (${result.virtual_service}, rule ${result.rule_index}): ${result.action}`,
    result.status ? ` ${result.status}` : ""));
  if (result.reason) lines.push(el("p", { class: "muted" }, result.reason));
  if (result.destinations.length) {
    lines.push(el("table", { id: "explain-destinations" },
      el("thead", {}, el("tr", {}, ...["cluster", "weight", "share", "protocol", "live hosts"]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, ...result.destinations.map((d) => {
        const live = (result.clusters[d.cluster] || { hosts: [] }).hosts;
        const healthy = live.filter((h) => h.healthy).length;
        return el("tr", { "data-cluster": d.cluster },
          el("td", {}, el("code", {}, d.cluster)),
          el("td", { class: "num" }, d.weight),
          el("td", { class: "num" }, pct(100 * d.share)),
          el("td", {}, d.protocol),
          el("td", { class: "num" }, `${healthy} / ${live.length} healthy`));
      }))));
  }
  return lines;
}

async function explainSubmit(event) {
  event.preventDefault();
  const out = $("explain-result");
  const query = new URLSearchParams();
  query.set("url", $("explain-url").value.trim());
  query.set("method", $("explain-method").value);
  for (const line of $("explain-headers").value.split("\n")) {
    if (line.includes(":")) query.append("header", line.trim());
  }
  out.replaceChildren(el("p", { class: "muted" }, "asking /explain …"));
  try {
    const response = await fetch(`/explain?${query}`);
    const result = await response.json();
    if (!response.ok) {
      out.replaceChildren(el("p", { class: "error" }, result.error || `HTTP ${response.status}`));
      return;
    }
    out.replaceChildren(...explainSummary(result),
      el("details", {}, el("summary", {}, "full answer"),
         el("pre", {}, JSON.stringify(result, null, 2))));
  } catch (err) {
    out.replaceChildren(el("p", { class: "error" }, `explain failed: ${err}`));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("explain-form").addEventListener("submit", explainSubmit);
  connect();
});
