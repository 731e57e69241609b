// Rules: what each one matches, how it picks among its targets and routes, where it falls
// back, its policies, and each target's live price, latency, health and share of traffic.
import {admin, all, get} from "../api.js";
import {badge, clear, duration, h, ms, num, pct, tags, usd} from "../dom.js";

function match(rule) {
  const m = rule.match || {};
  const parts = [m.models?.length
    ? h("div", {}, "models ", m.models.map((x) => h("code", {class: "tag"}, x)))
    : h("div", {class: "muted"}, rule.catch_all ? "every model (catch-all)" : "every model")];
  if (m.paths?.length) parts.push(h("div", {}, "paths ", m.paths.map((x) => h("code", {class: "tag"}, x))));
  for (const [name, value] of Object.entries(m.headers || {})) parts.push(h("div", {}, "header ", h("code", {}, `${name}: ${value}`)));
  return parts;
}

function split(rule) {
  if (rule.strategy && rule.strategy !== "weighted") {
    return [h("div", {}, h("strong", {}, rule.strategy), " of:"),
      ...rule.targets.map((t) => h("div", {}, t.service, t.model ? ` → ${t.model}` : ""))];
  }
  const total = rule.targets.reduce((sum, t) => sum + t.weight, 0);
  return rule.targets.map((t) => {
    const share = t.weight / total;
    const bar = h("div", {class: "bar", title: `${num(share * 100, 1)} %`}, h("span"));
    bar.firstChild.style.width = `${share * 100}%`;
    return h("div", {class: "split"}, h("span", {}, t.service, t.model ? ` → ${t.model}` : "", " ", h("span", {class: "muted"}, `${num(share * 100, 1)} %`)), bar);
  });
}

// Conditional and semantic routes, in the order they are asked.
function routes(rule) {
  const said = (when) => Object.entries(when)
    .filter(([k, v]) => v !== null && !(k === "timezone" && v === "UTC"))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  const out = (rule.routes || []).map((r, i) => h("div", {},
    h("strong", {}, r.name || `routes[${i}]`), " when ", h("code", {}, said(r.when)),
    ` → ${r.targets.map((t) => t.model || t.service).join(", ")}`));
  for (const r of rule.semantic?.routes || []) {
    out.push(h("div", {}, h("strong", {}, r.name), ` about "${r.examples[0]}"…`,
      ` → ${r.targets.map((t) => t.model || t.service).join(", ")}`));
  }
  return out.length ? out : h("span", {class: "muted"}, "none");
}

// Each target as routing sees it now: price, latency, health, load, share of traffic.
function live(stats) {
  const head = ["Rule", "Target", "In", "Health", "Latency", "Load", "Share of traffic", "Spent", "Price (in / out per M)"];
  const rows = stats.flatMap((r) => r.targets.map((t, i) => {
    const bar = h("div", {class: "bar", title: pct(t.share)}, h("span"));
    bar.firstChild.style.width = `${t.share * 100}%`;
    const price = t.input_price == null ? "unknown" : `${usd(t.input_price)} / ${usd(t.output_price)}`;
    return h("tr", {"data-target": `${r.rule}:${t.service}/${t.model || ""}`},
      h("td", {}, i ? "" : h("strong", {}, r.rule), i ? "" : h("div", {class: "muted"}, r.strategy)),
      h("td", {}, t.service, t.model ? ` → ${t.model}` : ""),
      h("td", {class: "muted"}, t.sets.join(", ")),
      h("td", {}, badge(t.healthy ? "healthy" : "unhealthy")),
      h("td", {class: "num"}, ms(t.latency_ms)),
      h("td", {class: "num"}, `${t.inflight}${t.max_inflight ? `/${t.max_inflight}` : ""} in flight`),
      h("td", {}, h("div", {class: "split"}, h("span", {}, pct(t.share)), bar)),
      h("td", {class: "num"}, usd(t.cost_usd)),
      h("td", {class: "num"}, price));
  }));
  return [h("h2", {}, "Live routing"),
    h("p", {class: "muted"}, "Each target as routing sees it on this instance now: latency is a decaying average, the share counts about the last minute, spend is since the gateway started."),
    h("div", {class: "table-wrap"}, h("table", {id: "live-routing"}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {scope: "col"}, x)))), h("tbody", {}, rows)))];
}

function policies(rule) {
  const p = rule.policies || {};
  const out = [];
  for (const limit of p.rate_limit || []) {
    const what = [limit.requests != null ? `${limit.requests} requests` : null, limit.tokens != null ? `${limit.tokens} tokens` : null].filter(Boolean).join(" + ");
    out.push(h("div", {}, `rate limit: ${what} / ${duration(limit.window)} per ${limit.per}`));
  }
  if (p.cache) out.push(h("div", {}, `cache: ${p.cache.mode}, ttl ${duration(p.cache.ttl)}`));
  if (p.guardrails && p.guardrails.pii !== "off") out.push(h("div", {}, `guardrails: pii ${p.guardrails.pii}`));
  if (p.transform) out.push(h("div", {}, "transform: ", h("code", {}, JSON.stringify(p.transform))));
  if (p.log_bodies !== null && p.log_bodies !== undefined) out.push(h("div", {}, `log bodies: ${p.log_bodies ? "yes" : "no"}`));
  return out.length ? out : h("span", {class: "muted"}, "none");
}

export default {
  title: "Rules",
  render(root) {
    const error = h("p", {class: "error", role: "alert"});
    const box = h("section", {class: "panel"}, h("p", {class: "muted"}, "Loading…"));
    const liveBox = h("section", {class: "panel"});
    root.append(h("p", {class: "muted"}, "Rules are tried in this order (by priority, lower first; ties as listed, the file's then the store's); the first that matches a request routes it."), error, box, liveBox);
    Promise.all([all("/rules"), get(admin("/route/stats"))]).then(([rules, stats]) => {
      // The API lists by name; requests try rules by position (null: not running, last).
      rules.sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity) || a.name.localeCompare(b.name));
      const head = ["#", "Priority", "Rule", "Matches", "Targets (split)", "Routes", "Fallbacks", "Falls back on", "Policies", "Tags"];
      const rows = rules.map((rule) => h("tr", {"data-rule": rule.name},
        h("td", {class: "num"}, rule.position == null ? "–" : String(rule.position)),
        h("td", {class: "num"}, String(rule.priority)),
        h("td", {}, h("strong", {}, rule.name), h("div", {class: "muted"}, rule.source),
          rule.position == null ? h("div", {class: "error"}, "not running: see /admin/health") : null,
          rule.description ? h("div", {class: "muted"}, rule.description) : null),
        h("td", {}, match(rule)),
        h("td", {}, split(rule)),
        h("td", {}, routes(rule)),
        h("td", {}, rule.fallbacks.length ? rule.fallbacks.map((f, j) => h("div", {}, `${j + 1}. ${f.service}${f.model ? ` → ${f.model}` : ""}`)) : h("span", {class: "muted"}, "none")),
        h("td", {}, rule.fallbacks.length ? rule.fallback_on.join(", ") : "–"),
        h("td", {}, policies(rule)),
        h("td", {}, tags(rule.tags)),
      ));
      clear(box, rules.length
        ? h("div", {class: "table-wrap"}, h("table", {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {scope: "col"}, x)))), h("tbody", {}, rows)))
        : h("p", {class: "muted"}, "No rules."));
      clear(liveBox, ...live(stats.data));
    }).catch((e) => { error.textContent = e.message; });
  },
};
