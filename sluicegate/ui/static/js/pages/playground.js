// Playground: pick a rule, send a chat request through the gateway (streamed), and see the
// answer arrive with the response headers. It calls the data plane like any client, with a
// consumer's key: the admin session is not a key.
import {all, dataPlane, session} from "../api.js";
import {clear, h, table} from "../dom.js";

async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield data;
    }
  }
}

export default {
  title: "Playground",
  render(root) {
    const rule = h("select", {id: "play-rule"});
    const model = h("input", {id: "play-model", required: true});
    const key = h("input", {id: "play-key", type: "password", autocomplete: "off", required: true, value: session.lastKey || "", placeholder: "sg-… or another consumer key"});
    const message = h("textarea", {id: "play-message", required: true}, "Hello, gateway");
    const stream = h("input", {id: "play-stream", type: "checkbox", checked: true});
    const send = h("button", {type: "submit"}, "Send");
    const stop = h("button", {type: "button", class: "quiet", disabled: true}, "Stop");
    const form = h("form", {class: "panel"},
      h("div", {class: "toolbar"}, h("label", {}, "Rule", rule), h("label", {}, "Model", model), h("label", {}, "Consumer key", key)),
      h("label", {class: "wide"}, "Message", message),
      h("div", {class: "toolbar"}, h("label", {class: "check"}, stream, "Stream"), send, stop));
    const status = h("p", {class: "muted", id: "play-status", role: "status"});
    const output = h("pre", {class: "out", id: "play-output", "aria-live": "polite"});
    const headers = h("section", {class: "panel", id: "play-headers"});
    root.append(
      h("p", {class: "muted"}, "Requests go to the gateway's /v1/chat/completions with the key below (a key minted on the Consumers page is filled in)."),
      form, status, h("section", {class: "panel"}, h("h2", {}, "Answer"), output), headers);
    let rules = [];
    let abort = null;

    all("/rules").then((found) => {
      rules = found;
      clear(rule, rules.map((r) => h("option", {value: r.name}, r.name)));
      pick();
    }).catch((e) => { status.textContent = e.message; });

    function pick() {
      const chosen = rules.find((r) => r.name === rule.value);
      const models = chosen?.match?.models || [];
      model.value = models.find((m) => !/[*?[]/.test(m)) || chosen?.targets?.[0]?.model || "";
    }
    rule.addEventListener("change", pick);

    stop.addEventListener("click", () => abort?.abort());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      abort = new AbortController();
      send.disabled = true;
      stop.disabled = false;
      output.textContent = "";
      clear(headers);
      status.textContent = "Sending…";
      const started = performance.now();
      try {
        const response = await fetch(dataPlane("/v1/chat/completions"), {
          method: "POST",
          signal: abort.signal,
          headers: {"content-type": "application/json", authorization: `Bearer ${key.value.trim()}`},
          body: JSON.stringify({model: model.value, stream: stream.checked, messages: [{role: "user", content: message.value}]}),
        });
        const shown = [...response.headers.entries()].map(([name, value]) => ({name, value}));
        clear(headers, h("h2", {}, "Response headers"), table([
          {label: "Header", value: (x) => h("code", {}, x.name)},
          {label: "Value", value: (x) => h("code", {}, x.value)},
        ], shown));
        status.textContent = `HTTP ${response.status}`;
        if (!response.ok || !stream.checked) {
          const text = await response.text();
          let data = null;
          try { data = JSON.parse(text); } catch { /* not JSON: shown as is */ }
          output.textContent = data?.choices?.[0]?.message?.content ?? (data ? JSON.stringify(data, null, 2) : text);
        } else {
          let chunks = 0;
          for await (const data of events(response)) {
            if (data === "[DONE]") break;
            const chunk = JSON.parse(data);
            if (chunk.error) { output.textContent += `\n[error] ${chunk.error.message}`; continue; }
            output.textContent += chunk.choices?.[0]?.delta?.content || "";
            chunks += 1;
          }
          status.textContent = `HTTP ${response.status}, ${chunks} chunks streamed`;
        }
        status.textContent += ` in ${Math.round(performance.now() - started)} ms`;
      } catch (e) {
        status.textContent = e.name === "AbortError" ? "Stopped." : e.message;
      } finally {
        send.disabled = false;
        stop.disabled = true;
        abort = null;
      }
    });
    return () => abort?.abort();
  },
};
