// Line charts as inline SVG: time on x, one or more series on y.
import {h} from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 600;
const H = 170;
const PAD = {left: 64, right: 6, top: 10, bottom: 22};

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// series: [{name, values}], times: unix seconds, format: value -> label.
export function lineChart({title, times, series, format = String, summary = ""}) {
  const values = series.flatMap((x) => x.values).filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(...values, 0) || 1;
  const t0 = times[0] ?? 0;
  const t1 = times[times.length - 1] ?? 1;
  const x = (t) => PAD.left + ((t - t0) / Math.max(t1 - t0, 1)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${summary}`});
  svg.append(
    s("line", {class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0)}),
    s("line", {class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(top), y2: y(top)}),
    s("text", {class: "tick", x: PAD.left - 4, y: y(top) + 4, "text-anchor": "end"}, format(top)),
    s("text", {class: "tick", x: PAD.left - 4, y: y(0), "text-anchor": "end"}, format(0)),
  );
  if (times.length) {
    const clock = (t) => new Date(t * 1000).toLocaleTimeString("en-GB", {hour: "2-digit", minute: "2-digit"});
    svg.append(
      s("text", {class: "tick", x: PAD.left, y: H - 4}, clock(t0)),
      s("text", {class: "tick", x: W - PAD.right, y: H - 4, "text-anchor": "end"}, clock(t1)),
    );
  }
  series.forEach((one, i) => {
    const points = one.values
      .map((v, j) => (v === null || !Number.isFinite(v) ? null : [x(times[j]), y(v)]))
      .filter(Boolean);
    svg.append(s("polyline", {class: `s${i}`, points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ")}));
    // Few readings (a young process, a quiet hour): mark each, so a lone one shows.
    if (points.length <= 40) for (const [px, py] of points) svg.append(s("circle", {class: `dot s${i}`, cx: px.toFixed(1), cy: py.toFixed(1), r: 3}));
  });
  const legend = series.length > 1
    ? h("span", {class: "legend"}, series.map((one, i) => h("span", {class: `k${i}`}, `— ${one.name}`)))
    : null;
  return h("figure", {class: "chart"}, h("figcaption", {}, h("span", {}, h("strong", {}, title), " ", h("span", {class: "muted"}, summary)), legend), svg);
}
