// Downloads of the drawing as shown: a standalone SVG (marks and selection styles inside it) and a PNG
// drawn from that SVG on a canvas. Nothing leaves the browser.
import { SVG_CSS } from "./style";
import type { SvgDoc } from "./svgdoc";

const PNG_LONG_SIDE = 16000;
const PNG_MAX_AREA = 120e6; // keep within what browsers allow for one canvas

/** The drawing as a standalone SVG document. */
export function standaloneSvg(doc: SvgDoc): string {
  const copy = doc.svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("xmlns:xlink", "http://www.w3.org/1999/xlink");
  copy.setAttribute("width", `${doc.width}px`);
  copy.setAttribute("height", `${doc.height}px`);
  copy.removeAttribute("style");
  const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
  style.textContent = SVG_CSS;
  copy.insertBefore(style, copy.firstChild);
  return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + new XMLSerializer().serializeToString(copy);
}

function save(blob: Blob, filename: string, where: HTMLElement): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  where.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function downloadSvg(doc: SvgDoc, filename: string, where: HTMLElement): void {
  save(new Blob([standaloneSvg(doc)], { type: "image/svg+xml" }), filename, where);
}

export async function downloadPng(doc: SvgDoc, filename: string, where: HTMLElement): Promise<void> {
  const text = standaloneSvg(doc);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    img.decoding = "async";
    img.src = url;
    await img.decode();
    let k = 2;
    k = Math.min(k, PNG_LONG_SIDE / Math.max(doc.width, doc.height));
    k = Math.min(k, Math.sqrt(PNG_MAX_AREA / (doc.width * doc.height)));
    const w = Math.max(1, Math.round(doc.width * k)), h = Math.max(1, Math.round(doc.height * k));
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const g = canvas.getContext("2d");
    if (!g) throw new Error("no canvas");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, w, h);
    g.drawImage(img, 0, 0, w, h);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/png"));
    if (!blob) throw new Error("the browser could not encode the PNG");
    save(blob, filename, where);
  } finally {
    URL.revokeObjectURL(url);
  }
}
