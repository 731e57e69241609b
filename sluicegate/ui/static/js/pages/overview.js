// Overview: traffic, latency, errors, tokens and cost of this gateway, refreshed live.
import {get, session} from "../api.js";
import {lineChart} from "../chart.js";
import {clear, h, ms, num, pct, table, usd, when} from "../dom.js";

const REFRESH_MS = 5000;

function tile(label, value, stat) {
  return h("div", {class: "tile"}, h("div", {class: "label"}, label), h("div", {class: "value", "data-stat": stat}, value));
}

function tops(title, rows) {
  return h("section", {class: "panel"}, h("h2", {}, title), table([
    {label: "Name", value: (r) => r.name || "(no consumer or model)"},
    {label: "Requests", value: (r) => num(r.requests), num: true},
    {label: "Errors", value: (r) => num(r.errors), num: true},
    {label: "Tokens", value: (r) => num(r.tokens), num: true},
    {label: "Cost", value: (r) => usd(r.cost_usd), num: true},
  ], rows, {empty: "No requests in this window."}));
}

function draw(view, data) {
  const t = data.totals;
  const times = data.points.map((p) => p.t);
  const series = (key) => data.points.map((p) => p[key]);
  clear(view,
    data.authentication === "off" ? h("p", {class: "alert", role: "status", "data-stat": "authentication"}, "Authentication off: this gateway has no consumers and its config says auth: none, so it serves every request without a key.") : null,
    h("p", {class: "muted"}, `This gateway process, ${when(data.since)} to ${when(data.now)}. Refreshes every ${REFRESH_MS / 1000} s.`),
    h("div", {class: "tiles"},
      tile("Requests", num(t.requests), "requests"),
      tile("Requests / s", num(t.rps, 2), "rps"),
      tile("Latency p50", ms(t.p50_ms), "p50"),
      tile("Latency p99", ms(t.p99_ms), "p99"),
      tile("Error rate", pct(t.error_rate), "error-rate"),
      tile("Tokens in / out", `${num(t.input_tokens)} / ${num(t.output_tokens)}`, "tokens"),
      tile("Cost", usd(t.cost_usd), "cost"),
    ),
    h("div", {class: "grid"},
      h("div", {class: "panel"}, lineChart({title: "Requests per second", times, series: [{name: "req/s", values: series("rps")}], format: (v) => num(v, 2), summary: `avg ${num(t.rps, 2)}`})),
      h("div", {class: "panel"}, lineChart({title: "Latency", times, series: [{name: "p50", values: series("p50_ms")}, {name: "p99", values: series("p99_ms")}], format: (v) => ms(v), summary: ""})),
      h("div", {class: "panel"}, lineChart({title: "Error rate", times, series: [{name: "errors", values: series("error_rate").map((v) => v * 100)}], format: (v) => `${num(v, 1)}%`, summary: pct(t.error_rate)})),
      h("div", {class: "panel"}, lineChart({title: "Tokens", times, series: [{name: "input", values: series("input_tokens")}, {name: "output", values: series("output_tokens")}], format: (v) => num(v), summary: ""})),
      h("div", {class: "panel"}, lineChart({title: "Cost", times, series: [{name: "USD", values: series("cost_usd")}], format: (v) => usd(v), summary: usd(t.cost_usd)})),
    ),
    h("div", {class: "grid"}, tops("Top consumers", data.top_consumers), tops("Top models", data.top_models)),
  );
}

export default {
  title: "Overview",
  render(root) {
    let span = "1h";
    const view = h("div", {"aria-live": "polite", "aria-busy": "true"});
    const buttons = ["1h", "1d"].map((w) => h("button", {type: "button", "aria-pressed": String(w === span), onclick: () => pick(w)}, w === "1h" ? "Last hour" : "Last day"));
    const error = h("p", {class: "error", role: "alert"});
    root.append(h("div", {class: "toolbar"}, h("div", {class: "segmented", role: "group", "aria-label": "Window"}, buttons)), error, view);

    let asked = 0; // an answer for the previous window must not replace the new one
    async function load() {
      const mine = ++asked;
      try {
        const data = await get(`/ui/api/summary?window=${span}&gateway=${encodeURIComponent(session.gateway)}`);
        if (mine !== asked) return;
        error.textContent = "";
        draw(view, data);
        view.setAttribute("aria-busy", "false");
      } catch (e) {
        error.textContent = e.message;
      }
    }
    function pick(w) {
      span = w;
      buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.textContent === (w === "1h" ? "Last hour" : "Last day"))));
      load();
    }
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  },
};
