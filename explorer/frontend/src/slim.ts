// Graphviz's SVG output, trimmed for the page (runs in the layout worker).

/**
 * Graphviz's SVG made lighter for the page: each node's, edge's and cluster's <title> becomes a
 * data-name attribute and its tooltip anchor (<g id="a_…"><a xlink:title>) a data-tip attribute, and
 * comments go. About a third fewer elements to parse and style, and no native tooltips.
 */
export function slim(svg: string): string {
  return svg
    .replace(/<!--[\s\S]*?-->\n?/g, "")
    .replace(/(<g id="[^"]*" class="[^"]*")>\n<title>([^<]*)<\/title>\n(?:<g id="a_[^"]*"><a xlink:title="([^"]*)">\n)?/g,
      (_m, open: string, name: string, tip: string | undefined) =>
        `${open} data-name="${name.replace(/"/g, "&quot;")}"${tip === undefined ? "" : ` data-tip="${tip}"`}>\n`)
    .replace(/<g id="a_[^"]*"><a\b[^>]*>\n?/g, "")
    .replace(/<\/a>\n<\/g>\n?/g, "");
}
