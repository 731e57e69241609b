// Consumers and keys: create a consumer, mint a key (shown once), narrow, rotate, revoke,
// and each consumer's spend against its budget (from the audit log).
import {admin, all, call, get, session} from "../api.js";
import {armedButton, badge, clear, duration, h, list, num, table, tags, usd, when} from "../dom.js";

const DEFAULT_WINDOW = 30 * 86400; // a budget's default window, for consumers without one

function usage(name, seconds) {
  const since = Math.floor(Date.now() / 1000 - seconds);
  return get(admin(`/usage?group_by=consumer&consumer=${encodeURIComponent(name)}&since=${since}`))
    .then((answer) => answer.data[0] || {requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0})
    .catch(() => null); // no audit log on this gateway
}

function budgetBar(spent, budget) {
  const share = budget.usd > 0 ? spent / budget.usd : 1;
  const bar = h("div", {class: `bar${share >= 1 ? " over" : ""}`, role: "meter", "aria-valuemin": 0, "aria-valuemax": budget.usd, "aria-valuenow": spent, "aria-label": "Budget used"}, h("span"));
  bar.firstChild.style.width = `${Math.min(share, 1) * 100}%`;
  return bar;
}

function shownOnce(key, note) {
  const code = h("code", {"data-new-key": ""}, key);
  const copy = h("button", {type: "button", class: "quiet"}, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(key);
      copy.textContent = "Copied";
    } catch {
      getSelection().selectAllChildren(code); // no clipboard access: select it for Ctrl+C
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
  return h("div", {class: "secret", role: "status"}, h("strong", {}, note), code, copy);
}

export default {
  title: "Consumers and keys",
  render(root) {
    const error = h("p", {class: "error", role: "alert"});
    const nameInput = h("input", {id: "new-consumer", required: true, placeholder: "team-a"});
    const create = h("form", {class: "toolbar"}, h("label", {}, "New consumer", nameInput), h("button", {type: "submit"}, "Create consumer"));
    const listBox = h("section", {class: "panel"});
    const detail = h("section", {class: "panel", id: "consumer-detail", hidden: true});
    root.append(create, error, listBox, detail);
    let selected = null;

    async function loadList() {
      try {
        const consumers = await all("/consumers");
        const spend = await Promise.all(consumers.map((c) => usage(c.name, c.budget?.window || DEFAULT_WINDOW)));
        error.textContent = "";
        const rows = consumers.map((c, i) => ({...c, usage: spend[i]}));
        clear(listBox, h("h2", {}, "Consumers"), table([
          {label: "Name", value: (c) => h("button", {type: "button", class: "link", onclick: () => select(c.name)}, c.name)},
          {label: "Groups", value: (c) => tags(c.groups)},
          {label: "Rules", value: (c) => (c.rules ? tags(c.rules) : h("span", {class: "muted"}, "all"))},
          {label: "Keys", value: (c) => num(c.key_count), num: true},
          {label: "Requests", value: (c) => (c.usage ? num(c.usage.requests) : "–"), num: true},
          {label: "Spend", value: (c) => (c.usage ? usd(c.usage.cost_usd) : "–"), num: true},
          {label: "Budget", value: (c) => (c.budget ? h("div", {}, `${usd(c.budget.usd)} / ${duration(c.budget.window)}`, c.usage ? budgetBar(c.usage.cost_usd, c.budget) : null) : h("span", {class: "muted"}, "none"))},
          {label: "Source", value: (c) => c.source},
        ], rows, {empty: "No consumers yet.", rowAttrs: (c) => ({"data-consumer": c.name, class: c.name === selected ? "selected" : null})}),
        h("p", {class: "muted"}, "Requests and spend over each budget's window (30 days without one), from the audit log."));
      } catch (e) {
        error.textContent = e.message;
      }
    }

    let asked = 0; // the consumer picked last wins over slower answers for an earlier one
    function select(name, shown = null) {
      return show(name, shown).catch((e) => { error.textContent = e.message; });
    }

    async function show(name, shown) {
      const mine = ++asked;
      selected = name;
      const [consumer, keys] = await Promise.all([get(admin(`/consumers/${encodeURIComponent(name)}`)), get(admin(`/consumers/${encodeURIComponent(name)}/keys`))]);
      const spent = await usage(name, consumer.budget?.window || DEFAULT_WINDOW);
      if (mine !== asked) return;
      detail.hidden = false;
      const keyName = h("input", {id: "key-name", placeholder: "ci-bot", maxlength: 128});
      const expires = h("select", {id: "key-expires"}, ["", "1h", "1d", "7d", "30d", "90d"].map((v) => h("option", {value: v}, v || "never")));
      const models = h("input", {id: "key-models", placeholder: "all the consumer's"});
      const rules = h("input", {id: "key-rules", placeholder: "all the consumer's"});
      const grace = h("select", {id: "rotate-grace"}, ["24h", "1h", "7d", "0"].map((v) => h("option", {value: v}, v === "0" ? "none" : v)));
      const mint = h("form", {class: "toolbar"},
        h("label", {}, "Key name", keyName), h("label", {}, "Expires", expires),
        h("label", {}, "Only models", models), h("label", {}, "Only rules", rules),
        h("button", {type: "submit"}, "Mint key"));
      const failure = h("p", {class: "error", role: "alert"});
      mint.addEventListener("submit", async (event) => {
        event.preventDefault();
        const body = {name: keyName.value || null};
        if (expires.value) body.expires_in = expires.value;
        if (list(models.value).length) body.models = list(models.value);
        if (list(rules.value).length) body.rules = list(rules.value);
        try {
          const made = await call("POST", admin(`/consumers/${encodeURIComponent(name)}/keys`), body);
          session.lastKey = made.key;
          await select(name, shownOnce(made.key, `New key ${made.prefix}: copy it now, it is not shown again.`));
          loadList();
        } catch (e) { failure.textContent = e.message; }
      });
      const keyRows = keys.data.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      clear(detail,
        h("h2", {}, `Consumer ${name}`),
        h("dl", {class: "fields"},
          h("dt", {}, "Spend"), h("dd", {}, spent ? `${usd(spent.cost_usd)} over ${duration(consumer.budget?.window || DEFAULT_WINDOW)}, ${num(spent.requests)} requests` : "no audit log"),
          h("dt", {}, "Budget"), h("dd", {}, consumer.budget ? [`${usd(consumer.budget.usd)} per ${duration(consumer.budget.window)}`, spent ? budgetBar(spent.cost_usd, consumer.budget) : null] : "none"),
          h("dt", {}, "Limits"), h("dd", {}, (consumer.limits || []).map((l) => `${l.requests ?? "–"} requests, ${l.tokens ?? "–"} tokens / ${duration(l.window)}`).join("; ") || "none"),
        ),
        shown,
        h("h2", {}, "Mint a key"), mint, failure,
        h("h2", {}, "Keys"),
        h("div", {class: "toolbar"}, h("label", {}, "Rotation keeps the old key for", grace)),
        table([
          {label: "Prefix", value: (k) => h("code", {}, k.prefix)},
          {label: "Name", value: (k) => k.name || "–"},
          {label: "Status", value: (k) => badge(k.status)},
          {label: "Only models", value: (k) => (k.models ? tags(k.models) : "–")},
          {label: "Only rules", value: (k) => (k.rules ? tags(k.rules) : "–")},
          {label: "Expires", value: (k) => when(k.expires_at)},
          {label: "Last used", value: (k) => when(k.last_used_at)},
          {label: "Created", value: (k) => when(k.created_at)},
          {label: "", value: (k) => (k.status !== "active" ? "" : h("span", {class: "actions"},
            h("button", {type: "button", class: "quiet", onclick: async () => {
              try {
                const made = await call("POST", admin(`/keys/${encodeURIComponent(k.prefix)}/rotate`), {grace: grace.value === "0" ? 0 : grace.value});
                session.lastKey = made.key;
                await select(name, shownOnce(made.key, `Successor of ${k.prefix}: ${made.prefix}. Copy it now, it is not shown again.`));
              } catch (e) { failure.textContent = e.message; }
            }}, "Rotate"),
            " ",
            armedButton("Revoke", "Confirm revoke", async () => {
              try {
                await call("DELETE", admin(`/keys/${encodeURIComponent(k.prefix)}`));
                await select(name);
                loadList();
              } catch (e) { failure.textContent = e.message; }
            }),
          ))},
        ], keyRows, {empty: "No minted keys.", rowAttrs: (k) => ({"data-key": k.prefix})}),
      );
      for (const row of listBox.querySelectorAll("tr[data-consumer]")) row.classList.toggle("selected", row.dataset.consumer === name);
    }

    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("POST", admin("/consumers"), {name: nameInput.value.trim()});
        const name = nameInput.value.trim();
        nameInput.value = "";
        await loadList();
        await select(name);
      } catch (e) { error.textContent = e.message; }
    });
    loadList();
  },
};
