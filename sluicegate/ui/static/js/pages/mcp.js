// MCP servers: how each is reached, whether it answers, the tools it last listed, and the
// latest tool calls (audit rows of endpoint "mcp").
import {admin, all, get} from "../api.js";
import {badge, clear, h, ms, num, table, tags, when} from "../dom.js";

const REFRESH_MS = 5000;

export default {
  title: "MCP servers",
  render(root) {
    const error = h("p", {class: "error", role: "alert"});
    const serversBox = h("section", {class: "panel"});
    const callsBox = h("section", {class: "panel"});
    root.append(error, serversBox, callsBox);

    async function load() {
      try {
        const [servers, health, calls] = await Promise.all([
          all("/mcp-servers"),
          get(admin("/mcp-health")),
          get(admin("/logs?endpoint=mcp&limit=20")),
        ]);
        error.textContent = "";
        const state = Object.fromEntries(health.data.map((s) => [s.name, s]));
        clear(serversBox, h("h2", {}, "Servers"), serversTable(servers, state));
        clear(callsBox, h("h2", {}, "Recent tool calls"), callsTable(calls.data));
      } catch (e) {
        error.textContent = e.message;
      }
    }

    function serversTable(servers, state) {
      const rows = servers.map((s) => ({...s, live: state[s.name]}));
      return table([
        {label: "Name", value: (s) => h("strong", {}, s.name)},
        {label: "Reaches", value: (s) => h("code", {}, s.url || (s.command || []).join(" "))},
        {label: "Health", value: (s) => (s.live ? badge(s.live.up ? "healthy" : "down") : "–")},
        {label: "Why", value: (s) => s.live?.reason || ""},
        {label: "Tools", value: (s) => (s.live?.tools === null || s.live?.tools === undefined ? "–" : num(s.live.tools)), num: true},
        {label: "Source", value: (s) => s.source},
        {label: "Tags", value: (s) => tags(s.tags)},
      ], rows, {
        empty: "No MCP servers (mcp_servers in the config, or POST /admin/mcp-servers).",
        rowAttrs: (s) => ({"data-mcp-server": s.name}),
      });
    }

    function callsTable(rows) {
      return table([
        {label: "When", value: (r) => when(r.ts)},
        {label: "Server", value: (r) => r.service},
        {label: "Tool", value: (r) => h("code", {}, r.model)},
        {label: "Consumer", value: (r) => r.consumer || "–"},
        {label: "Status", value: (r) => h("span", {}, badge(r.status < 400 ? "ok" : "fail"), " ", String(r.status))},
        {label: "Latency", value: (r) => ms(r.latency_ms), num: true},
        {label: "Error", value: (r) => r.error_type || ""},
      ], rows, {empty: "No tool calls yet.", rowAttrs: (r) => ({"data-call": r.model})});
    }

    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  },
};
