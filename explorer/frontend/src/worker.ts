// Layout worker: Graphviz compiled to WebAssembly turns DOT into SVG off the page's main thread.
// Protocol: {id, dot} in; {id, svg, ms} or {id, error} out. The first message also loads Graphviz.
import { Graphviz } from "@hpcc-js/wasm-graphviz";
import { slim } from "./slim";

interface Request { id: number; dot: string }


let graphviz: Promise<Graphviz> | null = null;

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
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    (self as unknown as Worker).postMessage({ id, error: text || "Graphviz could not lay this graph out" });
  }
};
