// The viewer's styles (inside its shadow root). Colours follow Streamlit's theme variables when present.

/** Rules that also travel inside an exported SVG, so marks and selection look the same there. */
export const SVG_CSS = `
g.node.mark-changed polygon, g.node.mark-changed ellipse, g.node.mark-changed path { fill: #fde7b0; stroke: #d97706; stroke-width: 2.4px; }
g.node.mark-only-a polygon, g.node.mark-only-a ellipse, g.node.mark-only-a path { fill: #dbeafe; stroke: #2563eb; stroke-width: 2.4px; }
g.node.mark-only-b polygon, g.node.mark-only-b ellipse, g.node.mark-only-b path { fill: #ede9fe; stroke: #7c3aed; stroke-width: 2.4px; }
g.node.match polygon, g.node.match ellipse, g.node.match path { stroke: #0f766e; stroke-width: 3px; }
g.node.match-current polygon, g.node.match-current ellipse, g.node.match-current path { stroke: #0f766e; stroke-width: 4.5px; }
g.node.selected polygon, g.node.selected ellipse, g.node.selected path { stroke: #e8384f; stroke-width: 3.5px; }
g.node.selected { filter: drop-shadow(0 0 3px rgba(232, 56, 79, 0.75)); }
svg.tracing g.node:not(.traced) :is(polygon, ellipse, path, text),
svg.tracing g.edge:not(.traced) :is(path, polygon, text),
svg.tracing g.cluster :is(path, polygon, text) { fill-opacity: 0.18; stroke-opacity: 0.18; }
svg.tracing g.edge.traced path { stroke-width: 2.2px; }
`;

export const CSS = `
:host { display: block; }
.xd {
  --xd-text: var(--st-text-color, #31333f);
  --xd-bg: var(--st-background-color, #ffffff);
  --xd-bg2: var(--st-secondary-background-color, #f0f2f6);
  --xd-border: var(--st-border-color, rgba(49, 51, 63, 0.2));
  --xd-accent: var(--st-primary-color, #ff4b4b);
  --xd-radius: var(--st-base-radius, 0.5rem);
  font-family: var(--st-font, "Source Sans Pro", "Source Sans 3", system-ui, sans-serif);
  font-size: 14px;
  color: var(--xd-text);
  display: flex; flex-direction: column; gap: 6px;
  box-sizing: border-box; height: 640px; min-height: 0;
}
.xd *, .xd *::before, .xd *::after { box-sizing: border-box; }
.xd.present { font-size: 19px; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 6px; flex: none; }
.toolbar .group { display: flex; align-items: center; gap: 4px; flex-wrap: nowrap; }
.toolbar button, .toolbar input {
  font: inherit; color: inherit; line-height: 1.2;
  border: 1px solid var(--xd-border); border-radius: var(--xd-radius);
  background: var(--xd-bg); padding: 0.25em 0.6em; min-height: 2em; white-space: nowrap;
}
.toolbar button { cursor: pointer; min-width: 2.1em; }
.toolbar button:hover { border-color: var(--xd-accent); color: var(--xd-accent); }
.toolbar button[aria-pressed="true"] { background: var(--xd-bg2); border-color: var(--xd-accent); color: var(--xd-accent); }
.toolbar input[type="search"] { width: 13em; padding-left: 0.5em; }
.toolbar :focus-visible, .viewport:focus-visible { outline: 2px solid var(--xd-accent); outline-offset: 1px; }
.toolbar .count { min-width: 4.5em; font-variant-numeric: tabular-nums; opacity: 0.8; white-space: nowrap; }
.toolbar .message { opacity: 0.85; white-space: nowrap; }
.toolbar .message:empty, .toolbar .count:empty { display: none; }
.toolbar .keyline { display: flex; gap: 10px; font-size: 0.9em; white-space: nowrap; }
.toolbar .keyline:empty { display: none; }
.keyline i { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px; border: 2px solid; vertical-align: -0.1em; margin-right: 3px; }
.panes { display: flex; gap: 8px; flex: 1 1 auto; min-height: 0; }
.pane {
  position: relative; flex: 1 1 0; min-width: 0; display: flex; flex-direction: column;
  border: 1px solid var(--xd-border); border-radius: var(--xd-radius); overflow: hidden; background: #ffffff;
}
.pane-title { flex: none; padding: 4px 10px; font-weight: 600; border-bottom: 1px solid var(--xd-border);
  background: var(--xd-bg2); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panes.single .pane-title { display: none; }
.viewport { position: relative; flex: 1 1 auto; overflow: hidden; overflow: clip; cursor: grab; touch-action: none; outline: none; user-select: none; -webkit-user-select: none; }
.shield { position: absolute; inset: 0; z-index: 1; cursor: grabbing; }
.shield[hidden] { display: none; }
.stage { position: absolute; left: 0; top: 0; transform-origin: 0 0; }
.stage.moving { will-change: transform; }
.stage svg { display: block; }
.viewport g.node:not(.legend) { cursor: pointer; }
.overlay { position: absolute; left: 50%; top: 12px; transform: translateX(-50%); z-index: 3;
  background: rgba(255, 255, 255, 0.94); border: 1px solid var(--xd-border); border-radius: var(--xd-radius);
  padding: 6px 12px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.08); max-width: calc(100% - 24px); pointer-events: none; }
.overlay:empty { display: none; }
.overlay.error { border-color: #e0a800; background: #fff8e1; pointer-events: auto; white-space: pre-wrap; }
.minimap { position: absolute; right: 8px; bottom: 8px; z-index: 2; border: 1px solid var(--xd-border);
  background: rgba(255, 255, 255, 0.92); border-radius: 4px; overflow: hidden; cursor: crosshair;
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.1); touch-action: none; }
.minimap[hidden] { display: none; }
.minimap canvas { display: block; }
.minimap .view { position: absolute; border: 1.5px solid var(--xd-accent); background: rgba(255, 75, 75, 0.08);
  pointer-events: none; min-width: 3px; min-height: 3px; }
.tip { position: absolute; z-index: 4; pointer-events: none; max-width: min(420px, 80%);
  background: #ffffff; color: var(--xd-text); border: 1px solid var(--xd-border); border-radius: 6px;
  padding: 5px 8px; font-size: 0.9em; line-height: 1.35; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.12); white-space: pre-wrap; }
.tip[hidden] { display: none; }
.tip b { font-weight: 600; }
${SVG_CSS}
`;
