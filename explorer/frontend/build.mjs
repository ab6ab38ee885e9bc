// Builds the diagram viewer into explorer/static/diagram/ (committed; the app serves it as static files).
//
//   npm --prefix explorer/frontend ci && npm --prefix explorer/frontend run build
//
// Writes viewer.js (ES module exporting `mount`), layout-worker.js (classic web worker holding Graphviz
// compiled to WebAssembly) and bundle.json:
//   {"source_sha256": ..., "built": <ISO time>, "graphviz": <Graphviz version>}
//
// source_sha256 recipe (recomputed by the Python tests to catch a bundle older than its sources):
//   files = package-lock.json, package.json, tsconfig.json, build.mjs and every file under src/
//   (recursively), each named by its path relative to explorer/frontend/ with "/" separators;
//   sort by that path (plain string order); sha256 over the concatenation of, for each file,
//   path (UTF-8) + one NUL byte + the file's bytes. Lower-case hex.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static", "diagram");

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function sourceSha256() {
  const files = ["package-lock.json", "package.json", "tsconfig.json", "build.mjs"].map((f) => join(here, f));
  files.push(...walk(join(here, "src")));
  const named = files.map((path) => [relative(here, path).split(sep).join("/"), path]);
  named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const hash = createHash("sha256");
  for (const [name, path] of named) {
    hash.update(Buffer.from(name, "utf8"));
    hash.update(Buffer.from([0]));
    hash.update(readFileSync(path));
  }
  return hash.digest("hex");
}

const sha = sourceSha256();
mkdirSync(out, { recursive: true });
const common = {
  bundle: true,
  minify: true,
  target: "es2020",
  logLevel: "warning",
  legalComments: "eof",
  define: { __BUNDLE_TAG__: JSON.stringify(sha.slice(0, 12)) },
};
await build({ ...common, entryPoints: [join(here, "src", "viewer.ts")], format: "esm", outfile: join(out, "viewer.js") });
await build({ ...common, entryPoints: [join(here, "src", "worker.ts")], format: "iife", outfile: join(out, "layout-worker.js") });

const { Graphviz } = await import("@hpcc-js/wasm-graphviz");
const version = (await Graphviz.load()).version();
const info = { source_sha256: sha, built: new Date().toISOString(), graphviz: version };
writeFileSync(join(out, "bundle.json"), JSON.stringify(info, null, 2) + "\n");
for (const f of ["viewer.js", "layout-worker.js", "bundle.json"]) {
  console.log(`${f.padEnd(18)} ${(statSync(join(out, f)).size / 1024).toFixed(1)} KiB`);
}
console.log(`source_sha256 ${sha}`);
