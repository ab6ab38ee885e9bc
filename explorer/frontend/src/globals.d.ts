// Replaced at build time with a short tag of the sources (keeps the worker's URL fresh across builds).
declare const __BUNDLE_TAG__: string;
