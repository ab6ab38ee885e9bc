// One layout worker for every pane on the page, started on first use, with a small LRU cache of results.
// Each pane (a "slot") has at most one request waiting; a newer request from the same slot replaces it.
// A stale request that has already run for over a second is abandoned by restarting the worker.

export interface Layout { svg: string; ms: number; cached: boolean; version: string; slimMs?: number; loadMs?: number }

/** Thrown (rejected) for a request that a newer one from the same slot made pointless. */
export class Superseded extends Error {
  constructor() { super("superseded"); }
}

interface Job {
  slot: string;
  dot: string;
  resolve: (l: Layout) => void;
  reject: (e: Error) => void;
  started?: number;
  id?: number;
}

const CACHE_SIZE = 8;
const RESTART_AFTER_MS = 1000;

const cache = new Map<string, { svg: string; ms: number; version: string }>();
const queue: Job[] = [];
let worker: Worker | null = null;
let running: Job | null = null;
let nextId = 1;

function workerUrl(): URL {
  return new URL(`layout-worker.js?v=${__BUNDLE_TAG__}`, import.meta.url);
}

function startWorker(): Worker {
  const w = new Worker(workerUrl());
  w.onmessage = (event: MessageEvent) => {
    const msg = event.data as { id: number; svg?: string; ms?: number; slimMs?: number; loadMs?: number; version?: string; error?: string };
    const job = running;
    if (!job || job.id !== msg.id) return;
    running = null;
    if (msg.error !== undefined) {
      job.reject(new Error(msg.error));
    } else {
      remember(job.dot, { svg: msg.svg!, ms: msg.ms!, version: msg.version ?? "" });
      job.resolve({ svg: msg.svg!, ms: msg.ms!, cached: false, version: msg.version ?? "", slimMs: msg.slimMs, loadMs: msg.loadMs });
    }
    pump();
  };
  w.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    const job = running;
    running = null;
    w.terminate();
    if (worker === w) worker = null;
    job?.reject(new Error(`the layout worker failed${event.message ? `: ${event.message}` : ""}`));
    pump();
  };
  return w;
}

function remember(dot: string, entry: { svg: string; ms: number; version: string }): void {
  cache.delete(dot);
  cache.set(dot, entry);
  while (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
}

function pump(): void {
  if (running || queue.length === 0) return;
  const job = queue.shift()!;
  const hit = cache.get(job.dot);
  if (hit) {
    remember(job.dot, hit);
    job.resolve({ ...hit, cached: true });
    pump();
    return;
  }
  worker ??= startWorker();
  job.id = nextId++;
  job.started = performance.now();
  running = job;
  worker.postMessage({ id: job.id, dot: job.dot });
}

/** Lay `dot` out for `slot`; resolves from the cache at once when this DOT was drawn lately. */
export function layout(slot: string, dot: string): Promise<Layout> {
  const hit = cache.get(dot);
  // Drop what this slot still had waiting.
  for (let i = queue.length - 1; i >= 0; i--) {
    if (queue[i].slot === slot) queue.splice(i, 1)[0].reject(new Superseded());
  }
  if (running && running.slot === slot && running.dot !== dot) {
    if (performance.now() - (running.started ?? 0) > RESTART_AFTER_MS) {
      worker?.terminate();
      worker = null;
      const stale = running;
      running = null;
      stale.reject(new Superseded());
    }
  }
  if (hit) {
    remember(dot, hit);
    return Promise.resolve({ ...hit, cached: true });
  }
  return new Promise<Layout>((resolve, reject) => {
    queue.push({ slot, dot, resolve, reject });
    pump();
  });
}

/** Whether a layout for this DOT is at hand without waiting. */
export function isCached(dot: string): boolean {
  return cache.has(dot);
}
