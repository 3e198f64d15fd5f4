#!/usr/bin/env node
// A real trace collector for the tests: Jaeger all-in-one (v1, in-memory
// storage, OTLP over gRPC and HTTP, the query API at /api/traces), built
// from the Go module proxy at a pinned release and cached under
// $HOME/.cache/redesmyn-tools (or $REDESMYN_TOOLS_DIR). Jaeger's go.mod has
// a replace directive, so `go install module@version` refuses it: the build
// runs in scripts/jaeger/, a module that requires it with the same replace
// (go.sum pins every dependency). The first build takes about 2 minutes on
// 2 cores; later runs find the binary and start in well under a second.
//
// Library:
//   import { startJaeger } from './scripts/jaeger.mjs';
//   const jaeger = await startJaeger();  // { otlpGrpc, otlpHttp, query, stop() }
//   const traces = await jaeger.trace(traceId);
// CLI:
//   node scripts/jaeger.mjs            build it if it is not cached; print its path
//   node scripts/jaeger.mjs serve      start one, print its ports, stop on SIGINT/SIGTERM

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive } from './emulator.mjs';

export const JAEGER_VERSION = 'v1.75.0';
const here = path.dirname(fileURLToPath(import.meta.url));
const MODULE_DIR = path.join(here, 'jaeger');
const START_TIMEOUT_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function jaegerBinaryPath() {
  if (process.env.REDESMYN_JAEGER) return path.resolve(process.env.REDESMYN_JAEGER);
  const tools = process.env.REDESMYN_TOOLS_DIR || path.join(os.homedir(), '.cache', 'redesmyn-tools');
  return path.join(tools, `jaeger-${JAEGER_VERSION}`, 'jaeger-all-in-one');
}

/** Builds the pinned all-in-one binary unless it is cached; returns its path. */
export function installJaeger({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const bin = jaegerBinaryPath();
  if (fs.existsSync(bin)) return bin;
  const dir = path.dirname(bin);
  fs.mkdirSync(dir, { recursive: true });
  // A lock directory (mkdir is atomic): one build at a time, a reader never sees half a binary.
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const owner = Number(fs.readFileSync(path.join(lock, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      if (owner && !pidAlive(owner)) fs.rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`jaeger: timed out waiting for the build lock ${lock}`);
      else spawnSync('sleep', ['1']);
      if (fs.existsSync(bin)) return bin;
    }
  }
  try {
    if (fs.existsSync(bin)) return bin;
    const staged = `${bin}.build-${process.pid}`;
    log(`jaeger: building all-in-one ${JAEGER_VERSION} (first run only, about 2 minutes)`);
    const env = { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: `${process.env.GOFLAGS ?? ''} -modcacherw -mod=mod`.trim() };
    const r = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', staged, 'github.com/jaegertracing/jaeger/cmd/all-in-one'], {
      cwd: MODULE_DIR,
      env,
      stdio: ['ignore', 2, 2],
    });
    if (r.status !== 0) throw new Error(`jaeger: go build failed (status ${r.status}); is Go >= 1.25 installed?`);
    fs.renameSync(staged, bin);
    return bin;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a collector on free loopback ports. `trace(id)` asks its query API
 * for one trace (`undefined` while it has none).
 */
export async function startJaeger() {
  const bin = installJaeger();
  const [grpc, http, query, admin, collectorGrpc, collectorHttp, queryGrpc] = await Promise.all(Array.from({ length: 7 }, freePort));
  const at = (port) => `127.0.0.1:${port}`;
  const child = spawn(
    bin,
    [
      `--collector.otlp.grpc.host-port=${at(grpc)}`,
      `--collector.otlp.http.host-port=${at(http)}`,
      `--query.http-server.host-port=${at(query)}`,
      `--query.grpc-server.host-port=${at(queryGrpc)}`,
      `--admin.http.host-port=${at(admin)}`,
      `--collector.grpc-server.host-port=${at(collectorGrpc)}`,
      `--collector.http-server.host-port=${at(collectorHttp)}`,
      '--log-level=warn',
    ],
    { env: { ...process.env, SPAN_STORAGE_TYPE: 'memory' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}): ${stderr}`);
    try {
      const r = await fetch(`http://${at(admin)}/`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`jaeger did not become healthy within ${START_TIMEOUT_MS} ms: ${stderr}`);
    }
    await sleep(100);
  }
  return {
    otlpGrpc: `http://${at(grpc)}`,
    otlpHttp: `http://${at(http)}`,
    query: `http://${at(query)}`,
    async trace(traceId) {
      const r = await fetch(`http://${at(query)}/api/traces/${traceId}`);
      if (r.status === 404) return undefined;
      if (!r.ok) throw new Error(`jaeger query: ${r.status} ${await r.text()}`);
      return (await r.json()).data?.[0];
    },
    async services() {
      const r = await fetch(`http://${at(query)}/api/services`);
      return (await r.json()).data ?? [];
    },
    stop() {
      return new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      });
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === 'serve') {
    const jaeger = await startJaeger();
    console.log(JSON.stringify({ otlpGrpc: jaeger.otlpGrpc, otlpHttp: jaeger.otlpHttp, query: jaeger.query }));
    const stop = () => jaeger.stop().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else {
    console.log(installJaeger());
  }
}
