// Small helpers to build the page without a framework.

// h("td", {class: "num"}, "3"): an element with attributes, handlers (onclick: fn) and children.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A table from column specs: {label, value(row) -> node|text, num: bool}.
export function table(columns, rows, {empty = "Nothing yet.", rowAttrs} = {}) {
  if (!rows.length) return h("p", {class: "muted"}, empty);
  const head = h("tr", {}, columns.map((c) => h("th", {class: c.num ? "num" : null, scope: "col"}, c.label)));
  const body = rows.map((row) =>
    h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", {class: c.num ? "num" : null}, c.value(row)))),
  );
  return h("div", {class: "table-wrap"}, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

export const tags = (list) => (list || []).map((t) => h("span", {class: "tag"}, t));
export const badge = (text) => h("span", {class: `badge ${text}`}, text);

export function num(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", {maximumFractionDigits: digits, minimumFractionDigits: 0});
}
export const ms = (value) => (value === null || value === undefined ? "–" : `${num(value, value < 10 ? 1 : 0)} ms`);
export const pct = (ratio) => `${num((ratio || 0) * 100, 2)} %`;
export const usd = (value) => `$${Number(value || 0).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 6})}`;
export function when(value) {
  if (!value) return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString("en-GB", {dateStyle: "short", timeStyle: "medium"});
}
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const units = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  for (const [size, unit] of units) if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}
export const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

// A button that asks for a second press before it acts (no blocking confirm dialogs).
export function armedButton(label, confirmLabel, action) {
  const button = h("button", {type: "button", class: "danger"}, label);
  let timer = null;
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = confirmLabel;
      timer = setTimeout(() => { button.classList.remove("armed"); button.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try { await action(); } finally { button.disabled = false; }
  });
  return button;
}
