// ResNet Explorer's diagram viewer: the entry point Streamlit's component loader imports.
// `mount(args)` is called on every change of `data`, with the same parentElement: the first call builds
// the viewer, later calls update it.
import { downloadPng, downloadSvg } from "./exporter";
import { Pane, type PaneData, type PaneHost } from "./pane";
import { CSS } from "./style";
import type { NodeInfo } from "./svgdoc";

export interface ViewerData {
  asset_base?: string;
  panes: PaneData[];
  selected?: string | null;
  present?: boolean;
  height?: number;
}

export interface ComponentArgs {
  data: ViewerData;
  parentElement: ShadowRoot | HTMLElement;
  setStateValue: (name: string, value: unknown) => void;
  setTriggerValue: (name: string, value: unknown) => void;
  key?: string;
  name?: string;
}

const EXPANDABLE = ["stage", "block", "rolled"];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

class Viewer implements PaneHost {
  private args: ComponentArgs;
  private readonly root: HTMLDivElement;
  private readonly panesEl: HTMLDivElement;
  private readonly search: HTMLInputElement;
  private readonly count: HTMLSpanElement;
  private readonly traceBtn: HTMLButtonElement;
  private readonly message: HTMLSpanElement;
  private readonly keyline: HTMLSpanElement;
  private panes: Pane[] = [];
  private active: Pane | null = null;
  private present = false;
  private selected: string | null = null;
  private lastDataSelected: string | null | undefined = undefined;
  private picked: string | null = null; // the last name the user clicked (its echo from Python is not re-centred)
  private centrePending: string | null = null;
  private matches: string[] = [];
  private matchIndex = -1;
  private tracing = false;
  private syncing = false;

  constructor(args: ComponentArgs) {
    this.args = args;
    const style = document.createElement("style");
    style.textContent = CSS;
    this.root = el("div", { class: "xd" });
    const bar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "Diagram tools" });
    const button = (label: string, text: string, onClick: () => void, title = label) => {
      const b = el("button", { type: "button", "aria-label": label, title }, text);
      b.addEventListener("click", onClick);
      return b;
    };
    const zoom = el("div", { class: "group" });
    zoom.append(
      button("Zoom out", "−", () => this.onActive((p) => p.zoomBy(1 / 1.25))),
      button("Zoom in", "+", () => this.onActive((p) => p.zoomBy(1.25))),
      button("Fit", "Fit", () => this.onActive((p) => p.fit()), "Show the whole drawing (0)"),
      button("Readable", "Readable", () => this.onActive((p) => p.legible()), "Back to the first view: text at a readable size, from the input"),
      button("Actual size", "1:1", () => this.onActive((p) => p.actualSize())),
    );
    const find = el("div", { class: "group" });
    this.search = el("input", { type: "search", "aria-label": "Search nodes", placeholder: "Search nodes", spellcheck: "false", autocomplete: "off" });
    this.search.addEventListener("input", () => this.runSearch(true));
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.step(e.shiftKey ? -1 : 1); }
      else if (e.key === "Escape") { e.preventDefault(); this.clearSearch(); }
    });
    this.count = el("span", { class: "count", "aria-live": "polite" });
    find.append(
      this.search,
      button("Previous match", "◀", () => this.step(-1)),
      button("Next match", "▶", () => this.step(1)),
      this.count,
    );
    this.traceBtn = button("Trace inputs", "Trace", () => this.toggleTrace(), "Highlight everything that feeds the selected node");
    this.traceBtn.setAttribute("aria-pressed", "false");
    const out = el("div", { class: "group" });
    out.append(
      button("Download SVG", "SVG", () => this.exportAs("svg"), "Download the drawing as SVG"),
      button("Download PNG", "PNG", () => this.exportAs("png"), "Download the drawing as PNG"),
    );
    this.message = el("span", { class: "message", role: "status" });
    this.keyline = el("span", { class: "keyline" });
    bar.append(zoom, find, this.traceBtn, out, this.keyline, this.message);
    this.panesEl = el("div", { class: "panes single" });
    this.root.append(bar, this.panesEl);
    args.parentElement.append(style, this.root);
  }

  // ---- data from Python -----------------------------------------------------------------------------

  update(args: ComponentArgs, received: number): void {
    this.args = args;
    const data = args.data ?? ({ panes: [] } as ViewerData);
    const present = !!data.present;
    const presentChanged = present !== this.present;
    this.present = present;
    this.root.classList.toggle("present", present);
    this.root.style.height = `${Math.max(240, Number(data.height) || 640)}px`;

    const list = Array.isArray(data.panes) ? data.panes : [];
    const ids = list.map((p) => String(p.id || "a"));
    if (ids.join(",") !== this.panes.map((p) => p.id).join(",")) {
      const keep = new Map(this.panes.map((p) => [p.id, p]));
      this.panes = ids.map((id) => keep.get(id) ?? new Pane(id, this));
      this.panesEl.replaceChildren(...this.panes.map((p) => p.el));
      if (!this.active || !this.panes.includes(this.active)) this.active = this.panes[0] ?? null;
    }
    this.panesEl.classList.toggle("single", this.panes.length < 2);
    this.renderKeyline(list);

    const sel = typeof data.selected === "string" && data.selected ? data.selected : null;
    if (sel !== this.lastDataSelected) {
      this.lastDataSelected = sel;
      if (sel !== this.picked) {
        this.setSelected(sel);
        this.centrePending = sel;
      }
      this.picked = null;
    }
    list.forEach((pd, i) => this.panes[i].update(pd, received));
    if (presentChanged) for (const p of this.panes) if (p.doc) p.initialView();
    this.flushCentre();
  }

  private renderKeyline(list: PaneData[]): void {
    const kinds = new Set<string>();
    for (const p of list) for (const v of Object.values(p.marks ?? {})) kinds.add(`${v}:${p.id}`);
    this.keyline.replaceChildren();
    const item = (colour: string, text: string) => {
      const s = el("span");
      const i = el("i");
      i.style.borderColor = colour;
      i.style.background = colour + "33";
      s.append(i, text);
      this.keyline.append(s);
    };
    if ([...kinds].some((k) => k.startsWith("changed"))) item("#d97706", "changed");
    const title = (id: string) => list.find((p) => p.id === id)?.title || id;
    if (kinds.has("only:a")) item("#2563eb", `only in ${title("a")}`);
    if (kinds.has("only:b")) item("#7c3aed", `only in ${title("b")}`);
  }

  private flushCentre(): void {
    const name = this.centrePending;
    if (!name) return;
    const drawn = this.panes.filter((p) => p.doc);
    if (drawn.length < this.panes.length || this.panes.some((p) => p.busy)) return;
    this.centrePending = null;
    let found = false;
    for (const p of drawn) found = p.centreOn(name) || found;
    this.say(found ? "" : `${name} is not in this view`);
  }

  // ---- PaneHost -------------------------------------------------------------------------------------

  floorPx(): number { return this.present ? 16 : 12; }

  onDrawn(pane: Pane): void {
    this.paintSelection(pane);
    this.paintSearch(pane);
    this.paintTrace(pane);
    // Compare view: once both are drawn, the right pane follows the left one's view.
    const lead = this.panes[0];
    if (this.panes.length > 1 && this.panes.every((p) => p.doc && !p.busy)) this.sync(lead);
    this.flushCentre();
  }

  onPick(pane: Pane, node: NodeInfo): void {
    this.active = pane;
    if (node.classes.includes("legend")) return;
    this.setSelected(node.name);
    this.picked = node.name;
    this.say("");
    this.args.setStateValue("selected", node.name);
    if (node.classes.some((c) => EXPANDABLE.includes(c))) this.args.setTriggerValue("expand", node.name);
  }

  onUserView(pane: Pane): void {
    this.active = pane;
    this.sync(pane);
  }

  /** Give the other pane the same scale, with the twin of the node at this pane's middle at its middle. */
  private sync(pane: Pane): void {
    if (this.syncing || this.panes.length < 2) return;
    this.syncing = true;
    try {
      for (const other of this.panes) {
        if (other === pane || !other.doc) continue;
        const twin = pane.centreNode((n) => other.doc!.nodes.has(n.name));
        if (twin) other.alignTo(twin.node.name, pane.s, twin.dx, twin.dy);
      }
    } finally {
      this.syncing = false;
    }
  }

  onKey(pane: Pane, e: KeyboardEvent): boolean {
    if (e.key === "Escape") { this.clearSearch(); return true; }
    if (e.key === "Enter" && this.selected && pane.doc) {
      const node = pane.doc.nodes.get(this.selected);
      if (node) { this.onPick(pane, node); return true; }
    }
    if (e.key === "/" ) { this.search.focus(); return true; }
    return false;
  }

  private onActive(fn: (p: Pane) => void): void {
    const p = this.active ?? this.panes[0];
    if (p && p.doc) fn(p);
  }

  private say(text: string): void { this.message.textContent = text; }

  // ---- selection --------------------------------------------------------------------------------------

  private setSelected(name: string | null): void {
    this.selected = name;
    for (const p of this.panes) this.paintSelection(p);
    if (this.tracing) for (const p of this.panes) this.paintTrace(p);
  }

  private paintSelection(p: Pane): void {
    const d = p.doc;
    p.el.dataset.selected = this.selected ?? "";
    if (!d) return;
    for (const old of d.svg.querySelectorAll("g.node.selected")) {
      old.classList.remove("selected");
      old.removeAttribute("aria-selected");
    }
    const n = this.selected ? d.nodes.get(this.selected) : undefined;
    if (n) {
      n.el.classList.add("selected");
      n.el.setAttribute("aria-selected", "true");
    }
  }

  // ---- search -----------------------------------------------------------------------------------------

  private runSearch(jump: boolean): void {
    for (const p of this.panes) this.paintSearch(p);
    const first = this.panes.find((p) => p.doc);
    this.matchIndex = -1;
    this.updateCount();
    if (jump && this.matches.length && first) this.step(1);
    else if (!first) this.matches = [];
  }

  private paintSearch(p: Pane): void {
    const d = p.doc;
    if (!d) return;
    const q = this.search.value.trim().toLowerCase();
    for (const old of d.svg.querySelectorAll("g.node.match, g.node.match-current")) old.classList.remove("match", "match-current");
    const found: string[] = [];
    if (q) {
      for (const n of d.order) {
        if (n.classes.includes("legend") || !n.search.includes(q)) continue;
        n.el.classList.add("match");
        found.push(n.name);
      }
    }
    if (p === this.panes[0] || (this.panes[0] && !this.panes[0].doc)) {
      this.matches = found;
      if (this.matchIndex >= found.length) this.matchIndex = -1;
      this.updateCount();
    }
  }

  private updateCount(): void {
    const q = this.search.value.trim();
    if (!q) { this.count.textContent = ""; return; }
    this.count.textContent = this.matches.length === 0 ? "no match"
      : `${this.matchIndex >= 0 ? this.matchIndex + 1 : 0} / ${this.matches.length}`;
  }

  private step(dir: number): void {
    if (!this.matches.length) { this.updateCount(); return; }
    const n = this.matches.length;
    this.matchIndex = this.matchIndex < 0 ? (dir > 0 ? 0 : n - 1) : (this.matchIndex + dir + n) % n;
    const name = this.matches[this.matchIndex];
    for (const p of this.panes) {
      const d = p.doc;
      if (!d) continue;
      for (const old of d.svg.querySelectorAll("g.node.match-current")) old.classList.remove("match-current");
      d.nodes.get(name)?.el.classList.add("match-current");
      p.centreOn(name);
    }
    this.updateCount();
  }

  private clearSearch(): void {
    this.search.value = "";
    this.matches = [];
    this.matchIndex = -1;
    for (const p of this.panes) this.paintSearch(p);
    this.updateCount();
  }

  // ---- trace ------------------------------------------------------------------------------------------

  private toggleTrace(): void {
    if (!this.tracing && !this.selected) { this.say("Select a node to trace its inputs"); return; }
    this.tracing = !this.tracing;
    this.traceBtn.setAttribute("aria-pressed", String(this.tracing));
    this.say("");
    for (const p of this.panes) this.paintTrace(p);
  }

  private paintTrace(p: Pane): void {
    const d = p.doc;
    if (!d) return;
    for (const old of d.svg.querySelectorAll(".traced")) old.classList.remove("traced");
    const on = this.tracing && !!this.selected && d.nodes.has(this.selected);
    d.svg.classList.toggle("tracing", on);
    if (!on) return;
    const into = new Map<string, { from: string; el: Element }[]>();
    for (const e of d.edges) {
      let list = into.get(e.to);
      if (!list) into.set(e.to, (list = []));
      list.push({ from: e.from, el: e.el });
    }
    const seen = new Set<string>([this.selected!]);
    const todo = [this.selected!];
    while (todo.length) {
      const name = todo.pop()!;
      for (const e of into.get(name) ?? []) {
        e.el.classList.add("traced");
        if (!seen.has(e.from)) { seen.add(e.from); todo.push(e.from); }
      }
    }
    for (const name of seen) d.nodes.get(name)?.el.classList.add("traced");
  }

  // ---- export -----------------------------------------------------------------------------------------

  private async exportAs(kind: "svg" | "png"): Promise<void> {
    const p = this.panes.find((x) => x.doc);
    if (!p || !p.doc) { this.say("Nothing drawn yet"); return; }
    const title = (this.args.data?.panes?.[0]?.title || "diagram").trim();
    const base = title.replace(/[^\w.-]+/g, "_").replace(/^_+|_+$/g, "") || "diagram";
    try {
      if (kind === "svg") downloadSvg(p.doc, `${base}.svg`, this.root);
      else { this.say("Drawing PNG…"); await downloadPng(p.doc, `${base}.png`, this.root); this.say(""); }
    } catch (err) {
      this.say(`Download failed: ${(err as Error).message}`);
    }
  }
}

const viewers = new WeakMap<object, Viewer>();

/** Build the viewer in `args.parentElement` on the first call; update it on later calls. */
export function mount(args: ComponentArgs): void {
  const received = performance.now();
  let v = viewers.get(args.parentElement);
  if (!v) {
    v = new Viewer(args);
    viewers.set(args.parentElement, v);
  }
  v.update(args, received);
}

export default mount;
