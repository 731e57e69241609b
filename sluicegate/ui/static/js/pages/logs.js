// Logs explorer: the audit log filtered by time, consumer, model, status or request id;
// one request opened shows every field the gateway kept, bodies included when logged.
import {admin, get} from "../api.js";
import {clear, h, ms, num, table, usd, when} from "../dom.js";

const FILTERS = [
  ["consumer", "Consumer", "team-a"],
  ["model", "Model", "gpt-4o-mini"],
  ["status", "Status", "429"],
  ["request_id", "Request id", ""],
];

function moment(input) {
  return input.value ? new Date(input.value).toISOString() : null; // the browser's local time
}


// Every step of the request's plan: a service tried (or passed over) and how it went.
function attempts(detail) {
  if (!detail || !detail.length) return h("p", {class: "muted"}, "No upstream was asked.");
  return table([
    {label: "Service", value: (a) => a.service},
    {label: "Target", value: (a) => (a.target ? h("code", {}, a.target) : "–")},
    {label: "Outcome", value: (a) => h("span", {class: `badge ${a.outcome === "2xx" ? "ok" : "fail"}`}, a.outcome)},
    {label: "Status", value: (a) => (a.status === null ? "–" : String(a.status)), num: true},
    {label: "Time", value: (a) => (a.target ? ms(a.ms) : "–"), num: true},
  ], detail, {rowAttrs: (a) => ({"data-attempt": a.service})});
}

function body(text) {
  if (text === null || text === undefined) return h("span", {class: "muted"}, "not logged");
  try { return h("pre", {}, JSON.stringify(JSON.parse(text), null, 2)); } catch { return h("pre", {}, text); }
}

export default {
  title: "Logs",
  render(root) {
    const since = h("input", {id: "log-since", type: "datetime-local", step: 1});
    const until = h("input", {id: "log-until", type: "datetime-local", step: 1});
    const inputs = Object.fromEntries(FILTERS.map(([name, , hint]) => [name, h("input", {id: `log-${name.replace("_", "-")}`, name, placeholder: hint})]));
    const form = h("form", {class: "toolbar", role: "search"},
      h("label", {}, "Since", since), h("label", {}, "Until", until),
      FILTERS.map(([name, label]) => h("label", {}, label, inputs[name])),
      h("button", {type: "submit"}, "Search"));
    const error = h("p", {class: "error", role: "alert"});
    const results = h("section", {class: "panel"});
    const detail = h("section", {class: "panel", id: "log-detail", hidden: true, tabindex: -1});
    root.append(form, error, results, detail);
    let rows = [];
    let next = null;
    let asked = 0; // an answer to an older search must not replace a newer one

    function query(after) {
      const params = new URLSearchParams({limit: "50"});
      for (const [name] of FILTERS) if (inputs[name].value.trim()) params.set(name, inputs[name].value.trim());
      if (moment(since)) params.set("since", moment(since));
      if (moment(until)) params.set("until", moment(until));
      if (after) params.set("after", after);
      return admin(`/logs?${params}`);
    }

    async function search(more = false) {
      const mine = ++asked;
      try {
        const page = await get(query(more ? next : null));
        if (mine !== asked) return;
        error.textContent = "";
        rows = more ? [...rows, ...page.data] : page.data;
        next = page.next;
        draw();
      } catch (e) { error.textContent = e.message; }
    }

    function draw() {
      clear(results, table([
        {label: "Time", value: (r) => when(r.ts)},
        {label: "Request id", value: (r) => h("button", {type: "button", class: "link mono", onclick: () => open(r.id)}, r.request_id)},
        {label: "Consumer", value: (r) => r.consumer || "–"},
        {label: "Key", value: (r) => (r.key_prefix ? h("code", {}, r.key_prefix) : "–")},
        {label: "Model", value: (r) => r.model || "–"},
        {label: "Rule → service", value: (r) => [r.rule, r.service].filter(Boolean).join(" → ") || "–"},
        {label: "Status", value: (r) => h("span", {class: `badge ${r.status < 400 ? "ok" : "fail"}`}, String(r.status))},
        {label: "Latency", value: (r) => ms(r.latency_ms), num: true},
        {label: "Tokens", value: (r) => `${num(r.input_tokens)} / ${num(r.output_tokens)}`, num: true},
        {label: "Cost", value: (r) => usd(r.cost_usd), num: true},
      ], rows, {empty: "No requests match.", rowAttrs: (r) => ({"data-request-id": r.request_id})}),
      next ? h("button", {type: "button", class: "quiet", onclick: () => search(true)}, "More") : null);
    }

    // By the row's own id: a request id is the client's choice, and several rows may share it.
    async function open(id) {
      try {
        const row = await get(admin(`/logs/${encodeURIComponent(id)}`));
        const shown = Object.entries(row).filter(([name]) => !name.endsWith("_body") && name !== "attempts_detail");
        clear(detail,
          h("h2", {}, "Request ", h("code", {}, row.request_id)),
          h("dl", {class: "fields"}, shown.flatMap(([name, value]) => [
            h("dt", {}, name.replaceAll("_", " ")),
            h("dd", {"data-field": name}, name === "ts" ? `${when(value)} (${value})` : value === null ? "–" : String(value)),
          ])),
          h("h2", {}, "Attempts"), attempts(row.attempts_detail),
          h("h2", {}, "Request body"), body(row.request_body),
          h("h2", {}, "Response body"), body(row.response_body),
        );
        detail.hidden = false;
        detail.focus();
      } catch (e) { error.textContent = e.message; }
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
    search();
  },
};
