// One diagram pane: the drawing (laid out by the shared worker), pan and zoom on one CSS transform,
// the minimap, the hover tooltip and the test hooks (data-* attributes on the pane element).
import { layout, Superseded } from "./layout";
import { indexSvg, parseSvg, type NodeInfo, type SvgDoc } from "./svgdoc";

export interface PaneData {
  id: string;
  title: string;
  dot: string;
  view_key: string;
  marks?: Record<string, string> | null;
}

/** What a pane asks of the viewer around it. */
export interface PaneHost {
  floorPx(): number; // legibility floor in CSS px
  onPick(pane: Pane, node: NodeInfo): void; // a click on a node
  onUserView(pane: Pane): void; // the user moved or zoomed this pane
  onDrawn(pane: Pane): void; // a new drawing is on screen
  onKey(pane: Pane, event: KeyboardEvent): boolean; // keys the viewer handles (true = handled)
}

const MAX_SCALE = 8;
const PAD = 16; // px kept around a fitted drawing
const MINI_MAX = 170;
const MINI_MIN = 44;
const CLICK_SLOP = 4;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  return el;
}

/** Pointer capture, where the browser grants it (it refuses pointers it does not know). */
function capture(el: Element, id: number): void {
  try { el.setPointerCapture(id); } catch { /* synthetic or already released pointer */ }
}

/** Roughly how many nodes a DOT text declares (for the progress line). */
function countNodes(dot: string): number {
  let n = 0;
  for (const line of dot.split("\n")) {
    const m = /^\s*"?([A-Za-z_][\w.]*)"?\s*\[/.exec(line);
    if (m && !["graph", "node", "edge", "legend"].includes(m[1]) && !line.includes("->")) n++;
  }
  return n;
}

export class Pane {
  readonly id: string;
  readonly el: HTMLElement;
  readonly viewport: HTMLDivElement;
  private readonly titleEl: HTMLDivElement;
  private readonly stage: HTMLDivElement;
  private readonly overlay: HTMLDivElement;
  private readonly mini: HTMLDivElement;
  private readonly miniCanvas: HTMLCanvasElement;
  private readonly miniView: HTMLDivElement;
  private readonly tip: HTMLDivElement;
  private readonly shield: HTMLDivElement;
  private readonly host: PaneHost;
  private settleTimer: number | undefined;

  doc: SvgDoc | null = null;
  dot: string | null = null; // the DOT last asked for
  private drawnKey: string | null = null; // view_key of what is on screen
  private wantKey: string | null = null;
  marks: Record<string, string> = {};
  s = 1;
  tx = 0;
  ty = 0;
  private token = 0;
  /** A layout for this pane is in flight. */
  busy = false;
  private renders = 0;
  private progress: number | undefined;
  private userMoved = false;
  private pointers = new Map<number, { x: number; y: number }>();
  private press: { x: number; y: number; node: NodeInfo | null; moved: boolean } | null = null;
  private pinch: { d: number; mx: number; my: number } | null = null;
  private miniGeom = { w: 0, h: 0, kx: 1, ky: 1 };
  private tipNode: NodeInfo | null = null;

  constructor(id: string, host: PaneHost) {
    this.id = id;
    this.host = host;
    this.el = h("section", "pane");
    this.el.dataset.pane = id;
    this.el.dataset.state = "loading";
    this.el.dataset.renders = "0";
    this.titleEl = h("div", "pane-title");
    this.viewport = h("div", "viewport");
    this.viewport.tabIndex = 0;
    this.viewport.setAttribute("role", "application");
    this.viewport.setAttribute("aria-roledescription", "diagram");
    this.stage = h("div", "stage");
    this.overlay = h("div", "overlay");
    this.overlay.setAttribute("role", "status");
    this.mini = h("div", "minimap");
    this.mini.hidden = true;
    this.mini.setAttribute("aria-hidden", "true");
    this.miniCanvas = h("canvas");
    this.miniView = h("div", "view");
    this.mini.append(this.miniCanvas, this.miniView);
    this.tip = h("div", "tip");
    this.tip.hidden = true;
    // Shown while panning: carries the grabbing cursor, so that no style of the drawing changes.
    this.shield = h("div", "shield");
    this.shield.hidden = true;
    this.viewport.append(this.stage, this.shield, this.overlay, this.mini, this.tip);
    this.el.append(this.titleEl, this.viewport);
    this.listen();
    new ResizeObserver((entries) => {
      const box = entries[entries.length - 1].contentRect;
      this.size = { w: box.width, h: box.height };
      this.resized();
    }).observe(this.viewport);
  }

  // ---- data and drawing -------------------------------------------------------------------------

  /** Take a pane's data: lays out again only when the DOT changed. `received` = when the data came. */
  update(data: PaneData, received: number): void {
    this.titleEl.textContent = data.title || "";
    this.el.setAttribute("aria-label", data.title || "diagram");
    const marks = data.marks && typeof data.marks === "object" ? data.marks : {};
    const marksChanged = JSON.stringify(marks) !== JSON.stringify(this.marks);
    this.marks = marks;
    this.wantKey = data.view_key;
    if (data.dot !== this.dot) {
      this.dot = data.dot;
      void this.relayout(data.dot, received);
    } else {
      if (data.view_key !== this.drawnKey && this.doc) {
        this.drawnKey = data.view_key;
        this.initialView();
      }
      if (marksChanged) this.applyMarks();
    }
  }

  private async relayout(dot: string, received: number): Promise<void> {
    const token = ++this.token;
    this.busy = true;
    const nodes = countNodes(dot);
    this.el.dataset.state = "layout";
    const started = performance.now();
    window.clearInterval(this.progress);
    const showProgress = () => {
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      this.overlay.className = "overlay";
      this.overlay.textContent = `Laying out ${nodes.toLocaleString("en-US")} nodes… ${secs} s`;
    };
    // Quick layouts never flash the progress line.
    this.progress = window.setInterval(showProgress, 100);
    let result;
    try {
      result = await layout(`pane-${this.id}-${paneSerial(this)}`, dot);
    } catch (err) {
      if (token !== this.token) return;
      window.clearInterval(this.progress);
      if (err instanceof Superseded) return;
      this.busy = false;
      this.fail(`Graphviz could not draw this diagram:\n${(err as Error).message}`);
      return;
    }
    if (token !== this.token) return;
    window.clearInterval(this.progress);
    // Parse, index, attach: off-document until attached. A big drawing yields in between, so that input
    // and other widgets get their turn (each step is a few hundred ms for 3,000 nodes).
    const big = result.svg.length > 500_000;
    const pause = () => (big ? new Promise((r) => setTimeout(r, 0)) : Promise.resolve());
    const insertStart = performance.now();
    let doc: SvgDoc;
    const holder = h("div", "drawing");
    let parseMs: number, indexMs: number;
    try {
      parseSvg(holder, result.svg);
      parseMs = performance.now() - insertStart;
      await pause();
      if (token !== this.token) return;
      const indexStart = performance.now();
      doc = indexSvg(holder);
      indexMs = performance.now() - indexStart;
    } catch (err) {
      this.busy = false;
      this.fail(`The diagram could not be shown: ${(err as Error).message}`);
      return;
    }
    await pause();
    if (token !== this.token) return;
    const attachStart = performance.now();
    this.stage.replaceChildren(holder);
    this.doc = doc;
    this.busy = false;
    const sameView = this.drawnKey !== null && this.drawnKey === this.wantKey;
    this.drawnKey = this.wantKey;
    this.applyMarks(); // also the minimap, which reads the pane's size: the drawing's first layout is here
    if (sameView) this.apply(); else this.initialView();
    const insertMs = parseMs + indexMs + performance.now() - attachStart;
    this.overlay.textContent = "";
    this.overlay.className = "overlay";
    this.el.dataset.layoutMs = result.ms.toFixed(0);
    this.el.dataset.cached = String(result.cached);
    this.el.dataset.insertMs = insertMs.toFixed(0);
    this.el.dataset.parseMs = parseMs.toFixed(0);
    this.el.dataset.indexMs = indexMs.toFixed(0);
    if (result.slimMs !== undefined) this.el.dataset.slimMs = result.slimMs.toFixed(0);
    if (result.loadMs !== undefined) this.el.dataset.loadMs = result.loadMs.toFixed(0);
    this.el.dataset.nodes = String(doc.order.filter((n) => !n.classes.includes("legend")).length);
    this.el.dataset.fitted = String(doc.fitted);
    if (result.version) this.el.dataset.graphviz = result.version;
    this.host.onDrawn(this);
    // "Drawn" = after the frame that shows it has been painted.
    requestAnimationFrame(() => {
      setTimeout(() => {
        if (token !== this.token) return;
        this.el.dataset.drawMs = (performance.now() - received).toFixed(0);
        this.el.dataset.paintMs = (performance.now() - insertStart).toFixed(0);
        this.renders += 1;
        this.el.dataset.renders = String(this.renders);
        this.el.dataset.state = "ready";
      }, 0);
    });
  }

  private fail(message: string): void {
    this.overlay.className = "overlay error";
    this.overlay.textContent = message;
    this.el.dataset.state = "error";
  }

  applyMarks(): void {
    if (!this.doc) return;
    for (const el of this.doc.svg.querySelectorAll(".mark-changed, .mark-only-a, .mark-only-b")) {
      el.classList.remove("mark-changed", "mark-only-a", "mark-only-b");
    }
    for (const [name, kind] of Object.entries(this.marks)) {
      const node = this.doc.nodes.get(name);
      const cls = kind === "changed" ? "mark-changed" : kind === "only" ? `mark-only-${this.id === "b" ? "b" : "a"}` : "";
      if (node && cls) node.el.classList.add(cls);
    }
    this.drawMinimap();
  }

  // ---- view ---------------------------------------------------------------------------------------

  // The viewport's size, kept by the ResizeObserver (reading clientWidth would force a layout).
  private size: { w: number; h: number } | null = null;
  get width(): number { return this.size ? this.size.w : this.viewport.clientWidth; }
  get height(): number { return this.size ? this.size.h : this.viewport.clientHeight; }

  /** The scale at which the smallest text is exactly at the legibility floor. */
  floorScale(): number {
    const d = this.doc;
    if (!d) return 1;
    return this.host.floorPx() / (d.minFont * d.pxPerUnit);
  }

  minTextPx(): number {
    const d = this.doc;
    return d ? d.minFont * d.pxPerUnit * this.s : 0;
  }

  /** Fit the whole drawing when that keeps text legible, else the floor zoom at the top (the input). */
  initialView(): void {
    const d = this.doc;
    if (!d) return;
    this.userMoved = false;
    const vw = this.width, vh = this.height;
    if (vw <= 0 || vh <= 0) return;
    const fit = Math.min((vw - 2 * PAD) / d.width, (vh - 2 * PAD) / d.height, 2);
    const floor = this.floorScale();
    if (fit >= floor * 0.999) {
      this.s = fit;
      this.tx = (vw - fit * d.width) / 2;
      this.ty = (vh - fit * d.height) / 2;
    } else {
      this.s = floor;
      const input = d.nodes.get("input");
      if (d.width * floor <= vw - 2 * PAD) this.tx = (vw - floor * d.width) / 2;
      else if (input && floor * (input.box.x + input.box.w) + 2 * PAD <= vw) this.tx = PAD; // legend and input both in view
      else this.tx = vw / 2 - floor * (input ? input.box.x + input.box.w / 2 : d.width / 2);
      this.ty = PAD;
    }
    this.apply(false);
  }

  /** The whole drawing in the pane (an overview: its text may fall below the floor; the first view never does). */
  fit(): void {
    const d = this.doc;
    if (!d || this.width <= 0 || this.height <= 0) return;
    const fit = Math.min(this.fitScale(), 2);
    this.s = fit;
    this.tx = (this.width - fit * d.width) / 2;
    this.ty = (this.height - fit * d.height) / 2;
    this.userMoved = true;
    this.apply();
    this.host.onUserView(this);
  }

  /** Back to the first view: the whole drawing when it is legible so, else the floor zoom on the input. */
  legible(): void { this.initialView(); this.userMoved = true; this.host.onUserView(this); }

  actualSize(): void {
    this.zoomTo(1, this.width / 2, this.height / 2);
    this.host.onUserView(this);
  }

  /** Zoom to scale `s` keeping the screen point (px, py) still. */
  zoomTo(s: number, px: number, py: number): void {
    const lo = Math.min(this.fitScale() * 0.5, 0.5);
    const ns = Math.min(MAX_SCALE, Math.max(lo, s));
    const k = ns / this.s;
    this.tx = px - (px - this.tx) * k;
    this.ty = py - (py - this.ty) * k;
    this.s = ns;
    this.userMoved = true;
    this.apply();
  }

  zoomBy(factor: number, px = this.width / 2, py = this.height / 2): void {
    this.zoomTo(this.s * factor, px, py);
  }

  private fitScale(): number {
    const d = this.doc;
    if (!d) return 1;
    return Math.min((this.width - 2 * PAD) / d.width, (this.height - 2 * PAD) / d.height);
  }

  panBy(dx: number, dy: number): void {
    this.tx += dx;
    this.ty += dy;
    this.userMoved = true;
    this.apply();
  }

  /** Centre on a node, at least at the legibility floor. Returns false when it is not in this drawing. */
  centreOn(name: string, keepScale = false): boolean {
    const n = this.doc?.nodes.get(name);
    if (!n) return false;
    if (!keepScale) this.s = Math.min(MAX_SCALE, Math.max(this.s, this.floorScale()));
    this.tx = this.width / 2 - this.s * (n.box.x + n.box.w / 2);
    this.ty = this.height / 2 - this.s * (n.box.y + n.box.h / 2);
    this.userMoved = true;
    this.apply();
    return true;
  }

  /** The node nearest the middle of the view, among those `accept` allows. */
  centreNode(accept: (n: NodeInfo) => boolean): { node: NodeInfo; dx: number; dy: number } | null {
    const d = this.doc;
    if (!d) return null;
    const cx = (this.width / 2 - this.tx) / this.s, cy = (this.height / 2 - this.ty) / this.s;
    let best: NodeInfo | null = null, bestD = Infinity;
    for (const n of d.order) {
      if (!accept(n)) continue;
      const dx = n.box.x + n.box.w / 2 - cx, dy = n.box.y + n.box.h / 2 - cy;
      const dist = dx * dx + dy * dy;
      if (dist < bestD) { bestD = dist; best = n; }
    }
    if (!best) return null;
    return { node: best, dx: (best.box.x + best.box.w / 2 - cx) * this.s, dy: (best.box.y + best.box.h / 2 - cy) * this.s };
  }

  /** Put node `name` at the view's middle plus (dx, dy) screen px, at scale s (compare view's sync). */
  alignTo(name: string, s: number, dx: number, dy: number): void {
    const n = this.doc?.nodes.get(name);
    if (!n) return;
    this.s = s;
    this.tx = this.width / 2 + dx - s * (n.box.x + n.box.w / 2);
    this.ty = this.height / 2 + dy - s * (n.box.y + n.box.h / 2);
    this.userMoved = true;
    this.apply(false);
  }

  /** Write the transform and the hooks; keep the view's middle over the drawing. */
  apply(clamp = true): void {
    const d = this.doc;
    if (d && clamp) {
      const vw = this.width, vh = this.height;
      this.tx = Math.min(vw / 2, Math.max(vw / 2 - this.s * d.width, this.tx));
      this.ty = Math.min(vh / 2, Math.max(vh / 2 - this.s * d.height, this.ty));
    }
    this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.s})`;
    this.el.dataset.scale = this.s.toFixed(4);
    this.el.dataset.minTextPx = this.minTextPx().toFixed(2);
    this.placeMiniView();
  }

  private resized(): void {
    if (!this.doc) return;
    if (!this.userMoved) this.initialView(); else this.apply();
    this.drawMinimap();
  }

  // ---- minimap --------------------------------------------------------------------------------------

  private drawMinimap(): void {
    const d = this.doc;
    if (!d) return;
    const k = Math.min(MINI_MAX / d.width, MINI_MAX / d.height);
    const w = Math.round(Math.min(MINI_MAX, Math.max(MINI_MIN, d.width * k)));
    const hgt = Math.round(Math.min(MINI_MAX, Math.max(MINI_MIN, d.height * k)));
    const kx = w / d.width, ky = hgt / d.height;
    this.miniGeom = { w, h: hgt, kx, ky };
    const dpr = window.devicePixelRatio || 1;
    const c = this.miniCanvas;
    c.width = Math.round(w * dpr);
    c.height = Math.round(hgt * dpr);
    c.style.width = `${w}px`;
    c.style.height = `${hgt}px`;
    this.mini.style.width = `${w + 2}px`;
    this.mini.style.height = `${hgt + 2}px`;
    const g = c.getContext("2d")!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, w, hgt);
    g.fillStyle = "#eef2f8";
    for (const cl of d.clusters) g.fillRect(cl.box.x * kx, cl.box.y * ky, cl.box.w * kx, cl.box.h * ky);
    for (const n of d.order) {
      const mark = this.marks[n.name];
      g.fillStyle = mark === "changed" ? "#f59e0b" : mark === "only" ? (this.id === "b" ? "#7c3aed" : "#2563eb")
        : n.fill === "#ffffff" || n.fill === "white" || n.fill === "none" ? "#9aa3b2" : n.fill;
      g.fillRect(n.box.x * kx, n.box.y * ky, Math.max(1, n.box.w * kx), Math.max(1, n.box.h * ky));
    }
    this.placeMiniView();
  }

  private placeMiniView(): void {
    const d = this.doc;
    if (!d) { this.mini.hidden = true; return; }
    const larger = d.width * this.s > this.width + 1 || d.height * this.s > this.height + 1;
    this.mini.hidden = !larger;
    if (!larger) return;
    const { kx, ky } = this.miniGeom;
    const { w, h: mh } = this.miniGeom;
    const x0 = Math.max(0, (-this.tx / this.s) * kx), y0 = Math.max(0, (-this.ty / this.s) * ky);
    const x1 = Math.min(w, ((this.width - this.tx) / this.s) * kx), y1 = Math.min(mh, ((this.height - this.ty) / this.s) * ky);
    const v = this.miniView.style;
    v.left = `${x0}px`;
    v.top = `${y0}px`;
    v.width = `${Math.max(0, x1 - x0)}px`;
    v.height = `${Math.max(0, y1 - y0)}px`;
  }

  private miniJump(e: PointerEvent): void {
    const r = this.miniCanvas.getBoundingClientRect();
    const { kx, ky } = this.miniGeom;
    const x = (e.clientX - r.left) / kx, y = (e.clientY - r.top) / ky;
    this.tx = this.width / 2 - this.s * x;
    this.ty = this.height / 2 - this.s * y;
    this.userMoved = true;
    this.apply();
    this.host.onUserView(this);
  }

  // ---- input ------------------------------------------------------------------------------------------

  /** During a gesture the drawing is its own compositor layer: panning moves a bitmap, no repaint. */
  private moving(): void {
    window.clearTimeout(this.settleTimer);
    this.stage.classList.add("moving");
  }

  /** Shortly after a gesture the layer goes, so that the drawing is painted sharp at its new scale. */
  private settle(): void {
    window.clearTimeout(this.settleTimer);
    this.settleTimer = window.setTimeout(() => {
      if (this.pointers.size === 0) this.stage.classList.remove("moving");
    }, 250);
  }

  private local(e: { clientX: number; clientY: number }): { x: number; y: number } {
    const r = this.viewport.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  private nodeAt(target: EventTarget | null): NodeInfo | null {
    const el = target instanceof Element ? target.closest("g.node") : null;
    const name = el?.getAttribute("data-name");
    return name && this.doc ? this.doc.nodes.get(name) ?? null : null;
  }

  private listen(): void {
    const vp = this.viewport;
    // Never scrolled (scrollIntoView or focus could otherwise shift the drawing under its own overlays).
    vp.addEventListener("scroll", () => { vp.scrollTop = 0; vp.scrollLeft = 0; });
    vp.addEventListener("wheel", (e) => {
      if (!this.doc) return;
      e.preventDefault();
      const p = this.local(e);
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.height : 1;
      const rate = e.ctrlKey ? 0.01 : 0.0015; // ctrl+wheel = trackpad pinch: small deltas
      this.hideTip();
      this.moving();
      this.settle();
      this.zoomBy(Math.exp(-e.deltaY * unit * rate), p.x, p.y);
      this.host.onUserView(this);
    }, { passive: false });

    vp.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || this.mini.contains(e.target as Node)) return;
      vp.focus({ preventScroll: true });
      const p = this.local(e);
      this.pointers.set(e.pointerId, p);
      capture(vp, e.pointerId);
      this.moving();
      if (this.pointers.size === 1) {
        this.press = { x: p.x, y: p.y, node: this.nodeAt(e.target), moved: false };
      } else if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        this.pinch = { d: Math.hypot(a.x - b.x, a.y - b.y), mx: (a.x + b.x) / 2, my: (a.y + b.y) / 2 };
        if (this.press) this.press.moved = true;
      }
    });
    vp.addEventListener("pointermove", (e) => {
      const prev = this.pointers.get(e.pointerId);
      if (!prev) { this.hover(e); return; }
      const p = this.local(e);
      this.pointers.set(e.pointerId, p);
      if (this.pointers.size >= 2 && this.pinch) {
        const [a, b] = [...this.pointers.values()];
        const d = Math.hypot(a.x - b.x, a.y - b.y), mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
        this.tx += mx - this.pinch.mx;
        this.ty += my - this.pinch.my;
        if (this.pinch.d > 0) this.zoomTo(this.s * (d / this.pinch.d), mx, my);
        this.pinch = { d, mx, my };
        this.host.onUserView(this);
        return;
      }
      const press = this.press;
      if (!press) return;
      if (!press.moved && Math.hypot(p.x - press.x, p.y - press.y) < CLICK_SLOP) return;
      if (!press.moved) {
        press.moved = true;
        this.shield.hidden = false;
        capture(this.shield, e.pointerId);
        this.hideTip();
      }
      this.panBy(p.x - prev.x, p.y - prev.y);
      this.host.onUserView(this);
    });
    const end = (e: PointerEvent) => {
      if (!this.pointers.delete(e.pointerId)) return;
      if (this.pointers.size < 2) this.pinch = null;
      if (this.pointers.size > 0) return;
      const press = this.press;
      this.press = null;
      this.shield.hidden = true;
      this.settle();
      if (e.type === "pointerup" && press && !press.moved && press.node) this.host.onPick(this, press.node);
    };
    vp.addEventListener("pointerup", end);
    vp.addEventListener("pointercancel", end);
    vp.addEventListener("pointerleave", () => { if (!this.press) this.hideTip(); });
    vp.addEventListener("keydown", (e) => {
      if (this.host.onKey(this, e)) { e.preventDefault(); return; }
      const step = 60;
      const moves: Record<string, [number, number]> = {
        ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step],
      };
      if (e.key in moves) { const [dx, dy] = moves[e.key]; this.panBy(dx, dy); }
      else if (e.key === "+" || e.key === "=") this.zoomBy(1.25);
      else if (e.key === "-" || e.key === "_") this.zoomBy(0.8);
      else if (e.key === "0") { this.fit(); return; }
      else return;
      e.preventDefault();
      this.host.onUserView(this);
    });

    this.mini.addEventListener("pointerdown", (e) => {
      e.stopPropagation();
      capture(this.mini, e.pointerId);
      this.miniJump(e);
    });
    this.mini.addEventListener("pointermove", (e) => {
      if (this.mini.hasPointerCapture(e.pointerId)) this.miniJump(e);
    });
  }

  // ---- tooltip ----------------------------------------------------------------------------------------

  private hover(e: PointerEvent): void {
    const node = this.nodeAt(e.target);
    if (!node || node.classes.includes("legend")) { this.hideTip(); return; }
    if (node !== this.tipNode) {
      this.tipNode = node;
      const lines = node.tooltip.split(/\r?\n/).filter((l) => l.trim());
      const shown = lines.slice(0, 4);
      this.tip.replaceChildren();
      const head = document.createElement("b");
      head.textContent = shown[0] ?? node.name;
      this.tip.append(head);
      const rest = shown.slice(1).join("\n") + (lines.length > 4 ? "\n…" : "");
      if (rest) this.tip.append("\n" + rest);
      this.tip.hidden = false;
    }
    const p = this.local(e);
    const tw = this.tip.offsetWidth, th = this.tip.offsetHeight;
    let x = p.x + 14, y = p.y + 16;
    if (x + tw > this.width - 4) x = Math.max(4, p.x - tw - 10);
    if (y + th > this.height - 4) y = Math.max(4, p.y - th - 10);
    this.tip.style.left = `${x}px`;
    this.tip.style.top = `${y}px`;
  }

  hideTip(): void {
    this.tipNode = null;
    this.tip.hidden = true;
  }
}

// Each Pane object gets its own worker slot (two viewers on a page must not supersede each other).
const serials = new WeakMap<Pane, number>();
let serialCounter = 0;
function paneSerial(p: Pane): number {
  let s = serials.get(p);
  if (s === undefined) { s = ++serialCounter; serials.set(p, s); }
  return s;
}
