// Line charts drawn as plain SVG: one path per series, a dot per point, two axes.

import { h, number } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"];
const SIZE = { width: 440, height: 200, left: 56, right: 12, top: 10, bottom: 26 };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

function extent(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

const tick = (y) => String(Number(y.toPrecision(3)));

function ticks(lo, hi, count) {
  return Array.from({ length: count }, (_, i) => lo + ((hi - lo) * i) / (count - 1));
}

/**
 * A chart of series [{name, points: [[step, value], ...]}] sorted by step.
 * Each series' <path> carries data-series and data-points (its point count).
 */
export function lineChart(title, series) {
  const { width, height, left, right, top, bottom } = SIZE;
  const all = series.flatMap((line) => line.points);
  const [x0, x1] = extent(all.map(([x]) => x));
  const [y0, y1] = extent(all.map(([, y]) => y));
  const px = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);

  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  svg.append(s("title", {}, title));
  for (const y of ticks(y0, y1, 4)) {
    svg.append(s("line", { x1: left, x2: width - right, y1: py(y), y2: py(y), class: "grid" }));
    svg.append(s("text", { x: left - 6, y: py(y) + 4, class: "tick", "text-anchor": "end" }, tick(y)));
  }
  const xTicks = [...new Set(ticks(x0, x1, 5).map(Math.round))];
  for (const x of xTicks) {
    svg.append(s("text", { x: px(x), y: height - 8, class: "tick", "text-anchor": "middle" }, x));
  }
  svg.append(s("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }));
  svg.append(s("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));

  series.forEach((line, i) => {
    const color = COLORS[i % COLORS.length];
    const d = line.points.map(([x, y], j) => `${j ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    svg.append(s("path", {
      d: d.join(" "), stroke: color, class: "line",
      "data-series": line.name, "data-points": line.points.length,
    }));
    const dots = s("g", { fill: color });
    for (const [x, y] of line.points) {
      const dot = s("circle", { cx: px(x), cy: py(y), r: line.points.length > 60 ? 1.2 : 2.5 });
      dot.append(s("title", {}, `${line.name} step ${x}: ${number(y)}`));
      dots.append(dot);
    }
    svg.append(dots);
  });

  const legend = h("div", { class: "legend" }, series.map((line, i) =>
    h("span", {}, h("i", { style: `background:${COLORS[i % COLORS.length]}` }), line.name,
      h("b", {}, number(line.points[line.points.length - 1][1])))));
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg, legend);
}
