// Layout worker: Graphviz compiled to WebAssembly turns DOT into SVG off the page's main thread.
// Protocol: {id, dot} in; {id, svg, ms} or {id, error} out. The first message also loads Graphviz.
import { Graphviz } from "@hpcc-js/wasm-graphviz";
import { slim } from "./slim";

interface Request { id: number; dot: string }


let graphviz: Promise<Graphviz> | null = null;
let warmed = false;

/** A chain of small clusters with labelled edges and skips, like a ResNet's layer view. */
function warmupDot(blocks: number): string {
  const lines = ["digraph w { node [shape=box]; a0 [label=\"in\"];"];
  for (let b = 0; b < blocks; b++) {
    lines.push(`subgraph cluster_${b} { label="b${b}";`);
    for (let k = 1; k <= 6; k++) lines.push(`a${b * 6 + k} [label="3x3 conv ${k}"];`);
    lines.push("}");
    for (let k = 1; k <= 6; k++) lines.push(`a${b * 6 + k - 1} -> a${b * 6 + k} [label="32x32x16"];`);
    lines.push(`a${b * 6} -> a${b * 6 + 6} [label="identity"];`);
  }
  lines.push("}");
  return lines.join("\n");
}

self.onmessage = async (event: MessageEvent<Request>) => {
  const { id, dot } = event.data;
  try {
    const loadStart = performance.now();
    graphviz ??= Graphviz.load();
    const gv = await graphviz;
    const loadMs = performance.now() - loadStart;
    const start = performance.now();
    const raw = gv.layout(dot, "svg", "dot");
    const ms = performance.now() - start;
    const slimStart = performance.now();
    const svg = slim(raw);
    const slimMs = performance.now() - slimStart;
    (self as unknown as Worker).postMessage({ id, svg, ms, slimMs, loadMs, version: gv.version() });
    if (!warmed) {
      // WebAssembly runs slowly until the engine has optimised Graphviz's hot paths and grown its memory:
      // the first large layout took ~3× a later one. One throw-away layout of a ResNet-like chain right
      // after the first drawing (while the reader looks at it) takes that cost out of the next view.
      warmed = true;
      gv.layout(warmupDot(40), "svg", "dot");
    }
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    (self as unknown as Worker).postMessage({ id, error: text || "Graphviz could not lay this graph out" });
  }
};
