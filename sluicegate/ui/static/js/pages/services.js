// Services and upstreams: what each target's health is now, with traffic of the last hour.
// A service's traffic is its attempts (failed ones behind a fallback included), so a
// service that fails every request another one then answers shows its error rate.
import {admin, all, get, session} from "../api.js";
import {badge, clear, h, list, ms, num, pct, table, tags} from "../dom.js";

const REFRESH_MS = 5000;

export default {
  title: "Services and upstreams",
  render(root) {
    const filter = h("input", {id: "tag-filter", type: "search", placeholder: "e.g. prod,eu", "aria-describedby": "tag-help"});
    const form = h("form", {class: "toolbar"},
      h("label", {}, "Tags (all of)", filter),
      h("button", {type: "submit"}, "Filter"),
      h("span", {id: "tag-help", class: "muted"}, "Only entities that carry every tag."),
    );
    const error = h("p", {class: "error", role: "alert"});
    const servicesBox = h("section", {class: "panel"});
    const targetsBox = h("section", {class: "panel"});
    root.append(form, error, servicesBox, targetsBox);

    let asked = 0; // an answer for the previous filter must not replace the new one
    async function load() {
      const mine = ++asked;
      const wanted = list(filter.value).join(",");
      const query = wanted ? `?tags=${encodeURIComponent(wanted)}` : "";
      try {
        const [services, upstreams, health, summary] = await Promise.all([
          all(`/services${query}`),
          all(`/upstreams${query}`),
          get(admin("/health")),
          get(`/ui/api/summary?window=1h&gateway=${encodeURIComponent(session.gateway)}`),
        ]);
        if (mine !== asked) return;
        error.textContent = "";
        const traffic = Object.fromEntries(summary.services.map((s) => [s.name, s]));
        // An endpoint service's one target; an upstream service's pool, as "n of m up".
        const own = Object.fromEntries(health.data.filter((t) => t.service).map((t) => [t.service, t]));
        const poolOf = (s) => s.upstream || upstreams.find((u) => u.id === s.upstream_id)?.name;
        const state = (s) => {
          if (own[s.name]) return badge(own[s.name].state);
          const targets = health.data.filter((t) => t.upstream && t.upstream === poolOf(s));
          if (!targets.length) return "–";
          const up = targets.filter((t) => t.state === "healthy" || t.state === "half-open").length;
          return `${up} of ${targets.length} targets up`;
        };
        clear(servicesBox, h("h2", {}, "Services"), table([
          {label: "Name", value: (s) => h("strong", {}, s.name)},
          {label: "Provider", value: (s) => s.provider},
          {label: "Reaches", value: (s) => (s.type === "upstream" ? `upstream ${s.upstream || s.upstream_id}` : s.host ? `${s.protocol}://${s.host}${s.port ? `:${s.port}` : ""}` : "the provider's endpoint")},
          {label: "Health", value: state},
          {label: "Attempts (1h)", value: (s) => num(traffic[s.name]?.requests || 0), num: true},
          {label: "Error rate (1h)", value: (s) => pct(traffic[s.name]?.error_rate || 0), num: true},
          {label: "Timeout", value: (s) => `${s.timeout} s`, num: true},
          {label: "Tags", value: (s) => tags(s.tags)},
        ], services, {empty: "No services match.", rowAttrs: (s) => ({"data-service": s.name})}));
        const pools = new Set(upstreams.map((u) => u.name));
        const byPool = Object.fromEntries(upstreams.map((u) => [u.name, u]));
        const rows = health.data.filter((t) => pools.has(t.upstream));
        clear(targetsBox, h("h2", {}, "Upstream targets"), table([
          {label: "Upstream", value: (t) => h("span", {}, t.upstream, " ", h("span", {class: "muted"}, byPool[t.upstream]?.algorithm || ""))},
          {label: "Target", value: (t) => h("code", {}, t.target)},
          {label: "State", value: (t) => badge(t.state)},
          {label: "Weight", value: (t) => num(t.weight, 2), num: true},
          {label: "In flight", value: (t) => num(t.inflight), num: true},
          {label: "Latency (EWMA)", value: (t) => ms(t.latency_ewma_ms), num: true},
          {label: "Failures in a row", value: (t) => num(t.consecutive_failures), num: true},
          {label: "Checks", value: (t) => [t.active_checks ? "active" : null, t.passive_checks ? "passive" : null].filter(Boolean).join(", ") || "none"},
        ], rows, {empty: "No upstream pools match."}));
      } catch (e) {
        error.textContent = e.message;
      }
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  },
};
