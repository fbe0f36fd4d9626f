#!/usr/bin/env node
// weir-js-build: build a JavaScript or TypeScript Weir plugin into a Wasm
// component of the typed world of weir:transform@0.2.0.
//
//   weir-js-build [PROJECT_DIR | ENTRY_FILE] [-o OUT.wasm] [--wit DIR] [--no-cache]
//
// 1. esbuild (pinned in package.json) bundles the entry and everything it
//    imports, TypeScript included, into one ES module, behind a small
//    wrapper that connects the SDK's log functions to the host import.
// 2. componentize-js (pinned) turns the bundle into a component against
//    world `typed`, with no wasi:http import (the host has none).
// 3. The component is stored in a cache outside the project, keyed by the
//    SHA-256 of the bundle, the WIT files, the world and the tool versions:
//    an unchanged plugin is copied out in milliseconds instead of being
//    componentized again (seconds, ~12 MB of output). The cache directory
//    is $WEIR_JS_CACHE, else $XDG_CACHE_HOME/weir/js, else ~/.cache/weir/js.
//
// Prints the path of the .wasm on stdout; progress goes to stderr.

import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WORLD = 'typed';
// The host provides no wasi:http; everything else is sandboxed by the host.
const DISABLED_FEATURES = ['http', 'fetch-event'];
const ENTRY_CANDIDATES = ['src/plugin.ts', 'src/plugin.js', 'src/index.ts', 'src/index.js'];

const sdkDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function usage(message) {
  if (message) process.stderr.write(`weir-js-build: ${message}\n`);
  process.stderr.write('usage: weir-js-build [PROJECT_DIR | ENTRY_FILE] [-o OUT.wasm] [--wit DIR] [--no-cache]\n');
  process.exit(2);
}

function fail(message) {
  process.stderr.write(`weir-js-build: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { target: '.', out: undefined, wit: undefined, cache: true };
  let positional = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-o' || a === '--out') args.out = argv[++i] ?? usage(`${a} needs a path`);
    else if (a === '--wit') args.wit = argv[++i] ?? usage('--wit needs a directory');
    else if (a === '--no-cache') args.cache = false;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (positional++ === 0) args.target = a;
    else usage(`unexpected argument ${a}`);
  }
  return args;
}

/** The entry file and the output path for a project directory or an entry file. */
function locate(target, out) {
  const abs = path.resolve(target);
  if (!fs.existsSync(abs)) fail(`${target}: no such file or directory`);
  if (fs.statSync(abs).isFile()) {
    const name = path.basename(abs).replace(/\.[cm]?[jt]s$/, '');
    return { entry: abs, root: path.dirname(abs), out: out ?? path.join(path.dirname(abs), `${name}.wasm`) };
  }
  let name = path.basename(abs);
  let entry;
  const manifest = path.join(abs, 'package.json');
  if (fs.existsSync(manifest)) {
    const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8'));
    if (pkg.name) name = pkg.name.replace(/^@[^/]+\//, '');
    if (pkg.weir?.entry) entry = path.join(abs, pkg.weir.entry);
  }
  entry ??= ENTRY_CANDIDATES.map((c) => path.join(abs, c)).find((c) => fs.existsSync(c));
  if (!entry || !fs.existsSync(entry)) {
    fail(`${target}: no entry module (set "weir": {"entry": ...} in package.json, or create ${ENTRY_CANDIDATES.join(' or ')})`);
  }
  return { entry, root: abs, out: out ?? path.join(abs, 'dist', `${name}.wasm`) };
}

/** The WIT package directory: --wit, $WEIR_WIT_DIR, the SDK's own copy, or the repository's. */
function witDir(flag) {
  const candidates = [flag, process.env.WEIR_WIT_DIR, path.join(sdkDir, 'wit'), path.join(sdkDir, '..', 'wit', '0.2.0')];
  const dir = candidates.find((c) => c && fs.existsSync(path.join(c, 'worlds.wit')));
  if (!dir) fail(`cannot find the weir:transform@0.2.0 WIT files (looked in ${candidates.filter(Boolean).join(', ')}); pass --wit DIR`);
  return path.resolve(dir);
}

function cacheDir() {
  if (process.env.WEIR_JS_CACHE) return process.env.WEIR_JS_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'weir', 'js');
}

/** The directory of the installed package `name` (whatever its `exports` allow). */
function packageDir(name) {
  let dir = path.dirname(fileURLToPath(import.meta.resolve(name)));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === name) return dir;
    const up = path.dirname(dir);
    if (up === dir) fail(`cannot find the package directory of ${name}`);
    dir = up;
  }
}

function packageVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(packageDir(name), 'package.json'), 'utf8')).version;
}

async function bundle(entry, root) {
  const esbuild = await import('esbuild');
  // The wrapper imports the SDK's log module as the plugin resolves it, so
  // both share one module instance in the bundle.
  const wrapper = [
    `import { log as hostLog } from 'weir:transform/host@0.2.0';`,
    `import { connectHost } from '@weir/sdk/log';`,
    `connectHost(hostLog);`,
    `export * from ${JSON.stringify(entry)};`,
  ].join('\n');
  const result = await esbuild.build({
    stdin: { contents: wrapper, resolveDir: root, sourcefile: 'weir-entry.js', loader: 'js' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    external: ['weir:*'],
    logLevel: 'silent',
    // Let the plugin resolve @weir/sdk from the SDK running this build when
    // its own node_modules has none (a file given directly).
    nodePaths: [path.resolve(sdkDir, '..'), path.join(sdkDir, 'node_modules'), path.resolve(sdkDir, '..', 'node_modules')],
  }).catch((e) => fail(`bundling ${entry} failed:\n${(e.errors ?? []).map((m) => `  ${m.location?.file ?? ''}:${m.location?.line ?? ''}: ${m.text}`).join('\n') || e.message}`));
  const exports = result.outputFiles[0].text;
  if (!/\btypedPlugin\b/.test(exports)) {
    fail(`${entry} does not export \`typedPlugin\` (write: export const typedPlugin = plugin(MyTransform);)`);
  }
  return exports;
}

function componentize(source, wit, out) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-js-build-'));
  try {
    const src = path.join(tmp, 'plugin.js');
    fs.writeFileSync(src, source);
    const cli = path.join(packageDir('@bytecodealliance/componentize-js'), 'src', 'cli.js');
    const r = spawnSync(
      process.execPath,
      [cli, src, '--wit', wit, '--world-name', WORLD, '--disable', ...DISABLED_FEATURES, '--out', out],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
    );
    if (r.status !== 0 || !fs.existsSync(out)) {
      fail(`componentize-js failed (exit ${r.status ?? r.signal}):\n${r.stderr || r.stdout}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { entry, root, out } = locate(args.target, args.out);
  const wit = witDir(args.wit);
  const source = await bundle(entry, root);

  const hash = createHash('sha256');
  hash.update(`world=${WORLD};disabled=${DISABLED_FEATURES.join(',')};`);
  hash.update(`componentize-js=${packageVersion('@bytecodealliance/componentize-js')};esbuild=${packageVersion('esbuild')};`);
  for (const f of fs.readdirSync(wit).filter((f) => f.endsWith('.wit')).sort()) {
    hash.update(`${f}\0`).update(fs.readFileSync(path.join(wit, f))).update('\0');
  }
  hash.update(source);
  const key = hash.digest('hex');

  fs.mkdirSync(path.dirname(out), { recursive: true });
  const cache = cacheDir();
  const cached = path.join(cache, `${key}.wasm`);
  if (args.cache && fs.existsSync(cached)) {
    fs.copyFileSync(cached, out);
    process.stderr.write(`weir-js-build: ${path.relative(process.cwd(), entry)} unchanged, component from the cache\n`);
  } else {
    const started = Date.now();
    process.stderr.write(`weir-js-build: componentizing ${path.relative(process.cwd(), entry)} (takes a few seconds)\n`);
    const tmpOut = `${out}.tmp-${process.pid}`;
    componentize(source, wit, tmpOut);
    fs.renameSync(tmpOut, out);
    if (args.cache) {
      fs.mkdirSync(cache, { recursive: true });
      const tmpCached = `${cached}.tmp-${process.pid}`;
      fs.copyFileSync(out, tmpCached);
      fs.renameSync(tmpCached, cached);
    }
    process.stderr.write(`weir-js-build: built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
  process.stdout.write(`${out}\n`);
}

main().catch((e) => fail(e.stack ?? String(e)));
