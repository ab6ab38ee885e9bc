// A laid-out Graphviz SVG in the page: inserted once, indexed by node name, its labels fitted to their
// boxes. Everything that needs geometry is computed from the SVG's own attributes (no forced layout),
// and text widths come from a canvas with the same font, so the cost stays linear and small.

export interface Box { x: number; y: number; w: number; h: number }

export interface NodeInfo {
  name: string;
  el: SVGGElement;
  classes: string[];
  tooltip: string;
  search: string; // lower-case id + label text
  box: Box; // in CSS px of the SVG at scale 1
  fill: string;
}

export interface EdgeInfo { from: string; to: string; el: SVGGElement }

export interface SvgDoc {
  svg: SVGSVGElement;
  width: number; // CSS px at scale 1 (Graphviz points × 4/3)
  height: number;
  nodes: Map<string, NodeInfo>;
  order: NodeInfo[]; // document order (top to bottom in the ranks)
  edges: EdgeInfo[];
  clusters: { name: string; box: Box }[];
  minFont: number; // smallest font-size on the drawing, in SVG user units
  pxPerUnit: number; // CSS px per SVG user unit at scale 1
  fitted: number; // labels that had to be narrowed
}

const XLINK = "http://www.w3.org/1999/xlink";
const MARGIN = 3; // user units kept free between a label and its box's edge
const SQUEEZE_LIMIT = 0.85; // narrower than this and the font itself gets smaller too

let measureCtx: CanvasRenderingContext2D | null = null;
const widthCache = new Map<string, number>();

function measure(text: string, font: string): number {
  const key = font + "\u0000" + text;
  let w = widthCache.get(key);
  if (w === undefined) {
    measureCtx ??= document.createElement("canvas").getContext("2d")!;
    measureCtx.font = font;
    w = measureCtx.measureText(text).width / 100;
    if (widthCache.size > 50000) widthCache.clear();
    widthCache.set(key, w);
  }
  return w;
}

interface Affine { sx: number; sy: number; tx: number; ty: number }

function parseTransform(attr: string | null): Affine {
  const t: Affine = { sx: 1, sy: 1, tx: 0, ty: 0 };
  if (!attr) return t;
  const sc = /scale\(\s*([-\d.e]+)(?:[\s,]+([-\d.e]+))?\s*\)/.exec(attr);
  if (sc) { t.sx = parseFloat(sc[1]); t.sy = sc[2] !== undefined ? parseFloat(sc[2]) : t.sx; }
  const tr = /translate\(\s*([-\d.e]+)(?:[\s,]+([-\d.e]+))?\s*\)/.exec(attr);
  if (tr) { t.tx = parseFloat(tr[1]); t.ty = tr[2] !== undefined ? parseFloat(tr[2]) : 0; }
  return t;
}

function lengthPx(attr: string | null, fallback: number): number {
  if (!attr) return fallback;
  const v = parseFloat(attr);
  if (!isFinite(v)) return fallback;
  if (attr.endsWith("pt")) return v * 4 / 3;
  if (attr.endsWith("in")) return v * 96;
  return v;
}

const NUM = /-?\d*\.?\d+(?:e[-+]?\d+)?/gi;

/** Bounding box of a Graphviz shape element, in Graphviz coordinates, from its attributes. */
function shapeBox(el: Element): Box | null {
  const tag = el.tagName;
  if (tag === "ellipse") {
    const cx = +el.getAttribute("cx")!, cy = +el.getAttribute("cy")!;
    const rx = +el.getAttribute("rx")!, ry = +el.getAttribute("ry")!;
    return { x: cx - rx, y: cy - ry, w: 2 * rx, h: 2 * ry };
  }
  const src = tag === "path" ? el.getAttribute("d") : el.getAttribute("points");
  if (!src) return null;
  const nums = src.match(NUM);
  if (!nums || nums.length < 4) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i + 1 < nums.length; i += 2) {
    const x = +nums[i], y = +nums[i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x;
    if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

function firstShape(g: Element): Element | null {
  for (const child of g.querySelectorAll("polygon, ellipse, path")) {
    const fill = child.getAttribute("fill");
    const stroke = child.getAttribute("stroke");
    if (fill === "none" && stroke === "transparent") continue;
    return child;
  }
  return null;
}

function fontOf(t: Element, size: number): string {
  const weight = t.getAttribute("font-weight") === "bold" ? "bold " : "";
  const style = t.getAttribute("font-style") === "italic" ? "italic " : "";
  const family = t.getAttribute("font-family") || "Helvetica,Arial,sans-serif";
  // Measured at 100× and scaled back: free of small-size rounding.
  return `${style}${weight}${size * 100}px ${family}`;
}

interface Fit { t: SVGTextElement; avail: number; size: number; width: number }

/** The width a label may take inside `box` (Graphviz coordinates), given its anchor. */
function available(t: Element, box: Box, round: boolean, size: number): number {
  const x = +(t.getAttribute("x") ?? 0);
  const left = box.x + MARGIN, right = box.x + box.w - MARGIN;
  const anchor = t.getAttribute("text-anchor") || "start";
  let avail: number;
  if (anchor === "middle") avail = 2 * Math.min(x - left, right - x);
  else if (anchor === "end") avail = x - left;
  else avail = right - x;
  if (round && box.h > 0) {
    // An ellipse is narrower above and below its middle: take the chord at the label's height.
    const cy = box.y + box.h / 2;
    const mid = +(t.getAttribute("y") ?? 0) - 0.35 * size;
    const dy = Math.min(1, Math.abs(mid - cy) / (box.h / 2) + (0.5 * size) / (box.h / 2));
    avail = Math.min(avail, box.w * Math.sqrt(Math.max(0, 1 - dy * dy)) - 2 * MARGIN);
  }
  return avail;
}

/** Parse the SVG text into `host` (best while `host` is not in the document: no style or layout yet). */
export function parseSvg(host: HTMLElement, text: string): void {
  const start = text.indexOf("<svg");
  host.innerHTML = start >= 0 ? text.slice(start) : text;
}

/** Index the drawing parsed into `host` and fit its labels to their boxes. */
export function indexSvg(host: HTMLElement): SvgDoc {
  const svg = host.querySelector("svg") as SVGSVGElement | null;
  if (!svg) throw new Error("the layout produced no drawing");

  const vb = (svg.getAttribute("viewBox") || "0 0 0 0").trim().split(/[\s,]+/).map(Number);
  const width = lengthPx(svg.getAttribute("width"), vb[2] * 4 / 3);
  const height = lengthPx(svg.getAttribute("height"), vb[3] * 4 / 3);
  const kx = vb[2] ? width / vb[2] : 1, ky = vb[3] ? height / vb[3] : 1;
  svg.setAttribute("width", `${width}px`);
  svg.setAttribute("height", `${height}px`);
  svg.style.width = `${width}px`;
  svg.style.height = `${height}px`;
  const graph = svg.querySelector("g.graph");
  const tf = parseTransform(graph?.getAttribute("transform") ?? null);
  const toPx = (b: Box): Box => ({
    x: (tf.sx * (b.x + tf.tx) - vb[0]) * kx,
    y: (tf.sy * (b.y + tf.ty) - vb[1]) * ky,
    w: Math.abs(tf.sx * b.w * kx),
    h: Math.abs(tf.sy * b.h * ky),
  });

  // The worker has turned <title>s into data-name and tooltip anchors into data-tip; an SVG that still
  // has them (native tooltips would pop up late and twice) is converted here.
  const tooltips = new Map<Element, string>();
  for (const a of svg.querySelectorAll("a")) {
    const tip = a.getAttributeNS(XLINK, "title") ?? a.getAttribute("xlink:title");
    if (tip !== null) tooltips.set(a, tip);
    a.removeAttributeNS(XLINK, "title");
  }
  const nameOf = (g: Element): string => {
    const own = g.getAttribute("data-name");
    if (own !== null) return own;
    const title = g.querySelector("title");
    const name = title?.textContent ?? "";
    title?.remove();
    g.setAttribute("data-name", name);
    return name;
  };
  const tipOf = (g: Element): string | null => {
    const own = g.getAttribute("data-tip");
    if (own !== null) return own;
    const a = g.querySelector("a");
    return a ? tooltips.get(a) ?? null : null;
  };

  const fits: Fit[] = [];
  let minFont = Infinity;
  const consider = (t: SVGTextElement, box: Box | null, round: boolean) => {
    const size = parseFloat(t.getAttribute("font-size") || "14");
    if (!box || !t.textContent) return;
    const width = measure(t.textContent, fontOf(t, size));
    const avail = available(t, box, round, size);
    if (width > avail && avail > 0) fits.push({ t, avail, size, width });
  };

  const nodes = new Map<string, NodeInfo>();
  const order: NodeInfo[] = [];
  for (const g of svg.querySelectorAll<SVGGElement>("g.node")) {
    const name = nameOf(g);
    const shape = firstShape(g);
    const gvBox = shape ? shapeBox(shape) : null;
    const texts = g.querySelectorAll<SVGTextElement>("text");
    let label = "";
    for (const t of texts) {
      label += " " + (t.textContent ?? "");
      consider(t, gvBox, shape?.tagName === "ellipse");
    }
    const box = gvBox ? toPx(gvBox) : { x: 0, y: 0, w: 0, h: 0 };
    const info: NodeInfo = {
      name,
      el: g,
      classes: (g.getAttribute("class") || "").split(/\s+/).filter((c) => c && c !== "node"),
      tooltip: tipOf(g) || name,
      search: (name + " " + label + " " + (tipOf(g) || "")).toLowerCase(),
      box,
      fill: shape?.getAttribute("fill") || "#ffffff",
    };
    if (name && !nodes.has(name)) { nodes.set(name, info); order.push(info); }
    g.setAttribute("role", "button");
  }

  const clusters: { name: string; box: Box }[] = [];
  for (const g of svg.querySelectorAll<SVGGElement>("g.cluster")) {
    const name = nameOf(g).replace(/^cluster_/, "");
    const shape = firstShape(g);
    const gvBox = shape ? shapeBox(shape) : null;
    for (const t of g.querySelectorAll<SVGTextElement>("text")) consider(t, gvBox, false);
    if (gvBox) clusters.push({ name, box: toPx(gvBox) });
  }
  if (graph) {
    // The drawing's own title stays within the drawing.
    const bg = graph.querySelector(":scope > g > a > polygon, :scope > polygon");
    const box = bg ? shapeBox(bg) : null;
    const titleText = graph.querySelector<SVGTextElement>(":scope > g > a > text, :scope > text");
    if (titleText) consider(titleText, box, false);
    graph.querySelector(":scope > title")?.remove();
  }

  const edges: EdgeInfo[] = [];
  for (const g of svg.querySelectorAll<SVGGElement>("g.edge")) {
    const text = nameOf(g);
    const i = text.indexOf("->");
    if (i < 0) continue;
    const from = text.slice(0, i).split(":")[0], to = text.slice(i + 2).split(":")[0];
    g.setAttribute("data-from", from);
    g.setAttribute("data-to", to);
    edges.push({ from, to, el: g });
  }

  // All reads are done; now the writes (no layout is forced in between).
  for (const f of fits) {
    const ratio = f.avail / f.width;
    if (ratio < SQUEEZE_LIMIT) f.t.setAttribute("font-size", (f.size * ratio / SQUEEZE_LIMIT).toFixed(2));
    f.t.setAttribute("textLength", f.avail.toFixed(2));
    f.t.setAttribute("lengthAdjust", "spacingAndGlyphs");
  }
  for (const t of svg.querySelectorAll("text")) {
    const s = parseFloat(t.getAttribute("font-size") || "14");
    if (s < minFont && t.textContent?.trim()) minFont = s;
  }
  return {
    svg, width, height, nodes, order, edges, clusters,
    minFont: isFinite(minFont) ? minFont : 14,
    pxPerUnit: Math.abs(tf.sx) * kx,
    fitted: fits.length,
  };
}
