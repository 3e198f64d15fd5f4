#!/usr/bin/env node
// The benchmark driver: `npm run bench` (see bench/README.md).
//
//   node bench/run.mjs                  # every scenario, 3 runs each, medians, soak included
//   node bench/run.mjs --quick          # one short run of scenarios 1–4
//   node bench/run.mjs --scenario 2     # only scenario 2 (repeatable: --scenario 1 --scenario 3)
//   node bench/run.mjs --smoke          # redesmyn no-op vs actix echo, 2 s, debug builds, no files written
//
// Other flags: --runs N, --duration S, --warmup S, --soak-seconds S,
// --concurrency 1,16 (load scenarios), --pin split|none, --only id,id
// (contender ids, see lib/contenders.mjs), --redesmyn release|debug,
// --rev <git rev> (release-build that commit instead of the working tree),
// --no-setup, --help.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildEcho, buildRedesmyn, compileServers, revision } from './lib/build.mjs';
import { BATCH, BUILD, MLSERVER_BATCH, MLSERVER_PARALLEL_WORKERS, PY, RESULTS, SERVER_ENV } from './lib/config.mjs';
import { CONTENDERS, SCENARIOS } from './lib/contenders.mjs';
import { describeMachine, machineMarkdown } from './lib/machine.mjs';
import {
  cpuSeconds,
  exitText,
  freePort,
  peakRssMiB,
  pinned,
  pinSelf,
  resetPeak,
  runLoadTool,
  rssMiB,
  startServer,
  stopServer,
  waitReady,
} from './lib/proc.mjs';
import { median, scenarioMarkdown, summarise } from './lib/report.mjs';
import { runStreams } from './lib/stream.mjs';
import { MEMORY_MODELS, ensureWrk, setup } from './setup.mjs';
import { runWrk } from './lib/wrk.mjs';
import { irisInferRequest, runGhz } from './lib/ghz.mjs';
import { grpcBody, runH2load } from './lib/h2load.mjs';
import { runVegeta, runVegetaRequests } from './lib/vegeta.mjs';
import { addVersion, windowStats } from './lib/reload.mjs';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    scenario: { type: 'string', multiple: true },
    runs: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'soak-seconds': { type: 'string' },
    pin: { type: 'string' },
    only: { type: 'string' },
    concurrency: { type: 'string' },
    redesmyn: { type: 'string' },
    rev: { type: 'string' },
    'no-setup': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (flags.help) {
  const lines = readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1);
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}

const mode = flags.smoke ? 'smoke' : flags.quick ? 'quick' : 'full';
const defaults = {
  full: { runs: 3, duration: 10, warmup: 3, scenarios: [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 5] },
  quick: { runs: 1, duration: 3, warmup: 1, scenarios: [1, 2, 3, 4] },
  smoke: { runs: 1, duration: 2, warmup: 1, scenarios: [1], concurrency: [16] },
}[mode];
const cfg = {
  mode,
  runs: Number(flags.runs ?? defaults.runs),
  duration: Number(flags.duration ?? defaults.duration),
  warmup: Number(flags.warmup ?? defaults.warmup),
  soakSeconds: Number(flags['soak-seconds'] ?? 300),
  scenarios: flags.scenario ? flags.scenario.flatMap((s) => s.split(',')).map(Number) : defaults.scenarios,
  only: flags.only ? flags.only.split(',') : mode === 'smoke' ? ['actix-echo', 'redesmyn-noop'] : null,
  concurrency: flags.concurrency ? flags.concurrency.split(',').map(Number) : (defaults.concurrency ?? null),
  redesmynBuild: flags.redesmyn ?? (mode === 'smoke' ? 'debug' : 'release'),
  pin: flags.pin ?? (os.availableParallelism() >= 2 ? 'split' : 'none'),
};
for (const s of cfg.scenarios) if (!SCENARIOS[s]) throw new Error(`no scenario ${s} (there are ${Object.keys(SCENARIOS).join(', ')})`);
if (!['split', 'none'].includes(cfg.pin)) throw new Error('--pin takes split or none');
if (!['release', 'debug'].includes(cfg.redesmynBuild)) throw new Error('--redesmyn takes release or debug');

const SERVER_CPUS = cfg.pin === 'split' ? '1' : null;
const LOAD_CPUS = cfg.pin === 'split' ? '0' : null;
const pinning =
  cfg.pin === 'split'
    ? 'servers pinned to CPU 1 (`taskset -c 1`), wrk (1 thread) and the harness to CPU 0 (`taskset -c 0`)'
    : 'no pinning: servers, wrk (1 thread) and the harness share all CPUs';

// ---------------------------------------------------------------------------
// Servers we started, so an interrupt never leaves one behind.
const live = new Set();
async function cleanup() {
  await Promise.all([...live].map((s) => stopServer(s, 1000)));
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping servers`);
    cleanup().finally(() => process.exit(130));
  });
}

const logsDir = join(BUILD, 'logs');
const scratch = join(BUILD, 'scratch');
mkdirSync(logsDir, { recursive: true });
mkdirSync(scratch, { recursive: true });

const ctx = { echoBin: null, serversDir: null, redesmynError: null, scratch, extraPorts: [] };

function unavailableReason(id) {
  const c = CONTENDERS[id];
  if (c.redesmyn && ctx.redesmynError) return ctx.redesmynError;
  if (id === 'actix-echo' && ctx.echoError) return ctx.echoError;
  return null;
}

/** Starts contender `id`, waits until it is ready. Returns { server, base, readyMs } or throws. */
/** Starts a contender; `allCpus` lets the server use every CPU whatever `--pin` says. */
async function launch(id, tag, { allCpus = false } = {}) {
  const c = CONTENDERS[id];
  const port = await freePort();
  ctx.extraPorts = [];
  for (let i = 0; i < (c.extraPorts ?? 0); i++) ctx.extraPorts.push(await freePort());
  const spec = c.start(ctx, port);
  const logFile = join(logsDir, `${tag}.log`);
  const t0 = performance.now();
  const server = startServer({
    cmd: spec.cmd,
    args: spec.args,
    cwd: spec.cwd ?? ctx.benchDir,
    env: { ...process.env, ...SERVER_ENV, ...spec.env },
    // Every CPU explicitly: the harness pinned itself to CPU 0, and children
    // inherit that. os.cpus(), not os.availableParallelism(): the latter
    // counts this process's CPUs, which after the pin is one, and gave `0-0`.
    cpus: allCpus ? `0-${os.cpus().length - 1}` : SERVER_CPUS,
    logFile,
  });
  live.add(server);
  const base = `http://127.0.0.1:${port}`;
  try {
    const readyMs = await waitReady(server, `${base}${c.ready}`, { t0, timeoutMs: c.startTimeoutMs ?? 30_000, intervalMs: 5 });
    return { server, base, readyMs, logFile };
  } catch (e) {
    await stopServer(server);
    live.delete(server);
    const log = server.log();
    const marker = log.match(/REDESMYN_NOT_AVAILABLE: (.*)/);
    const err = new Error(marker ? marker[1] : `${e.message}; log ${logFile}: ${lastLine(log)}`);
    err.unavailable = Boolean(marker) || server.exitInfo?.code === 3;
    throw err;
  }
}

async function shutdown(server) {
  await stopServer(server);
  live.delete(server);
}

const lastLine = (text) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-1)[0]
    ?.slice(0, 200) ?? '(empty)';

/**
 * Drives contender `c` for `seconds` at `connections`: wrk POSTing its body,
 * or h2load POSTing a ModelInfer call to its gRPC port when it is a gRPC
 * contender.
 */
function drive(base, c, connections, seconds) {
  if (c.grpc) {
    const url = `http://127.0.0.1:${c.grpc.port(ctx)}/inference.GRPCInferenceService/ModelInfer`;
    return runH2load({ url, bodyFile: grpcBody(c.grpc.model), connections, seconds, cpus: LOAD_CPUS });
  }
  return runWrk({ url: `${base}${c.route}`, bodyFile: c.body.file, contentType: c.body.contentType, repeat: c.body.repeat, connections, seconds, cpus: LOAD_CPUS });
}

/** A one-second ghz run on one connection: every call must answer gRPC OK. */
async function probeGrpc(base, c) {
  const r = await runGhz({ target: `127.0.0.1:${c.grpc.port(ctx)}`, data: irisInferRequest(c.grpc.model), connections: 1, seconds: 1, cpus: LOAD_CPUS });
  return r.requests > 0 && r.errorCount === 0
    ? { status: 200, body: `${r.requests} ModelInfer calls OK` }
    : { status: 0, body: `ModelInfer: ${r.requests} OK, ${r.errorCount} failed (${JSON.stringify(r.statuses)}; ${r.firstError})` };
}

/** One POST of the contender's body (a pool's probe body): checks the route answers before it is loaded. */
function probe(base, c) {
  const body = readFileSync(c.body.probe ?? c.body.file);
  return new Promise((resolve) => {
    const req = request(
      `${base}${c.route}`,
      { method: 'POST', agent: false, headers: { 'content-type': c.body.contentType, 'content-length': body.length } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, body: text.slice(0, 300), batchHeader: res.headers['x-batch-size'] ?? null }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.end(body);
  });
}

/**
 * redesmyn's batch counters (`redesmyn_batch_size_sum` and `_count`, summed
 * over endpoints) from its /metrics, or null where it serves none.
 */
async function batchCounters(base) {
  try {
    const res = await fetch(`${base}/metrics`);
    if (!res.ok) return null;
    const text = await res.text();
    const total = (name) =>
      [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);
    return { sum: total('redesmyn_batch_size_sum'), count: total('redesmyn_batch_size_count') };
  } catch {
    return null;
  }
}

async function loadOnce(server, base, c, connections, seconds) {
  resetPeak(server.pid);
  const batches0 = c.redesmyn ? await batchCounters(base) : null;
  const cpu0 = cpuSeconds(server.pid);
  const w = await drive(base, c, connections, seconds);
  const cpu1 = cpuSeconds(server.pid);
  const batches1 = batches0 ? await batchCounters(base) : null;
  const batchesRun = batches1 ? batches1.count - batches0.count : 0;
  return {
    rps: w.rps,
    p50Ms: w.latency_us.p50 / 1000,
    p99Ms: w.latency_us.p99 / 1000,
    p999Ms: w.latency_us.p99_9 / 1000,
    meanMs: w.latency_us.mean / 1000,
    errors: w.errorCount,
    non2xx: w.errors?.status ?? w.errorCount,
    meanBatch: w.meanBatch,
    // Per batch, not per request: shows batches that alternate in size,
    // which the per-request mean hides (a batch of 63 counts 63 times there).
    rowsPerBatch: batchesRun > 0 ? (batches1.sum - batches0.sum) / batchesRun : null,
    peakRssMiB: peakRssMiB(server.pid),
    cpuSecPer1k: w.requests > 0 ? ((cpu1 - cpu0) / w.requests) * 1000 : null,
    wrkCpuPct: w.wrkCpuPct,
    requests: w.requests,
    seconds: w.seconds,
  };
}

// ---------------------------------------------------------------------------
// Scenarios

async function loadScenario(id) {
  const s = SCENARIOS[id];
  const levels = cfg.concurrency ?? s.concurrency;
  const contenders = s.contenders.filter((c) => !cfg.only || cfg.only.includes(c));
  const rows = new Map(); // `${contender}@${concurrency}` → row
  for (const cid of contenders) {
    for (const conc of levels) {
      rows.set(`${cid}@${conc}`, { contender: cid, name: CONTENDERS[cid].name, concurrency: conc, status: 'ok', note: '', runs: [] });
    }
  }
  const setAll = (cid, status, note) => {
    for (const conc of levels) Object.assign(rows.get(`${cid}@${conc}`), { status, note });
  };
  // Runs are interleaved (run 1 of every contender, then run 2, ...) so slow
  // drift of the machine spreads over all contenders alike.
  for (let run = 1; run <= cfg.runs; run++) {
    for (const cid of contenders) {
      const c = CONTENDERS[cid];
      const first = rows.get(`${cid}@${levels[0]}`);
      if (first.status !== 'ok') continue;
      const reason = unavailableReason(cid);
      if (reason) {
        setAll(cid, 'not available', reason);
        continue;
      }
      console.log(`[${id}] ${c.name}: run ${run}/${cfg.runs}`);
      let launched;
      try {
        launched = await launch(cid, `s${id}-${cid}-run${run}`, { allCpus: s.allCpus });
      } catch (e) {
        setAll(cid, e.unavailable ? 'not available' : 'failed', e.message);
        console.log(`    ${e.unavailable ? 'not available' : 'failed'}: ${e.message}`);
        continue;
      }
      const { server, base } = launched;
      try {
        const p = c.grpc ? await probeGrpc(base, c) : await probe(base, c);
        if (run === 1) first.probe = p;
        if (p.status !== 200) throw new Error(`probe ${c.grpc ? 'ModelInfer' : `POST ${c.route}`} answered ${p.status}: ${p.body}`);
        await drive(base, c, Math.max(...levels), cfg.warmup);
        for (const conc of levels) {
          const r = await loadOnce(server, base, c, conc, cfg.duration);
          rows.get(`${cid}@${conc}`).runs.push(r);
          console.log(
            `    c=${String(conc).padStart(2)}  ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50Ms.toFixed(3)} ms  p99 ${r.p99Ms.toFixed(3)} ms  errors ${r.errors}` +
              (r.meanBatch != null ? `  batch ${r.meanBatch.toFixed(1)}` : ''),
          );
          if (server.exitInfo) throw new Error(`server died under load (${exitText(server.exitInfo)}): ${lastLine(server.log())}`);
        }
      } catch (e) {
        setAll(cid, 'failed', e.message);
        console.log(`    failed: ${e.message}`);
      } finally {
        await shutdown(server);
      }
    }
  }
  const out = [...rows.values()].map((r) => ({ ...r, median: r.status === 'ok' ? summarise(r.runs) : null }));
  return { title: s.title, kind: 'load', reference: s.reference, referenceName: CONTENDERS[s.reference]?.name, concurrency: levels, rows: out };
}

async function coldScenario(id) {
  const s = SCENARIOS[id];
  const contenders = s.contenders.filter((c) => !cfg.only || cfg.only.includes(c));
  const rows = contenders.map((cid) => ({ contender: cid, name: s.labels[cid] ?? CONTENDERS[cid].name, status: 'ok', note: '', runs: [] }));
  const runs = Math.max(cfg.runs, mode === 'full' ? 5 : 1);
  for (let run = 1; run <= runs; run++) {
    for (const row of rows) {
      if (row.status !== 'ok') continue;
      const reason = unavailableReason(row.contender);
      if (reason) {
        Object.assign(row, { status: 'not available', note: reason });
        continue;
      }
      try {
        const { server, readyMs } = await launch(row.contender, `s${id}-${row.contender}-run${run}`);
        const rss = rssMiB(server.pid);
        await shutdown(server);
        row.runs.push({ readyMs, rssMiB: rss });
        console.log(`[${id}] ${row.name}: ready after ${readyMs.toFixed(0)} ms, RSS ${rss.toFixed(0)} MiB`);
      } catch (e) {
        Object.assign(row, { status: e.unavailable ? 'not available' : 'failed', note: e.message });
        console.log(`[${id}] ${row.name}: ${row.status}: ${e.message}`);
      }
    }
  }
  for (const row of rows) {
    if (row.status !== 'ok') continue;
    row.median = summarise(row.runs);
    row.min = Math.min(...row.runs.map((r) => r.readyMs));
    row.max = Math.max(...row.runs.map((r) => r.readyMs));
  }
  return { title: s.title, kind: 'cold', runs, rows };
}

async function soakScenario(id) {
  const s = SCENARIOS[id];
  const contenders = s.contenders.filter((c) => !cfg.only || cfg.only.includes(c));
  const rows = [];
  for (const cid of contenders) {
    const c = CONTENDERS[cid];
    const row = { contender: cid, name: c.name, status: 'ok', note: '' };
    rows.push(row);
    const reason = unavailableReason(cid);
    if (reason) {
      Object.assign(row, { status: 'not available', note: reason });
      continue;
    }
    console.log(`[${id}] ${c.name}: ${cfg.soakSeconds} s at ${s.concurrency} connections`);
    let launched;
    try {
      launched = await launch(cid, `s${id}-${cid}`);
    } catch (e) {
      Object.assign(row, { status: e.unavailable ? 'not available' : 'failed', note: e.message });
      continue;
    }
    const { server, base } = launched;
    try {
      await runWrk({ url: `${base}${c.route}`, bodyFile: c.body.file, contentType: c.body.contentType, connections: s.concurrency, seconds: cfg.warmup, cpus: LOAD_CPUS });
      resetPeak(server.pid);
      const t0 = performance.now();
      const timeline = [{ t: 0, rssMiB: rssMiB(server.pid) }];
      const sampler = setInterval(() => timeline.push({ t: (performance.now() - t0) / 1000, rssMiB: rssMiB(server.pid) }), 5000);
      let r;
      try {
        r = await loadOnce(server, base, c, s.concurrency, cfg.soakSeconds);
      } finally {
        clearInterval(sampler);
      }
      timeline.push({ t: (performance.now() - t0) / 1000, rssMiB: rssMiB(server.pid) });
      const at = (sec) => timeline.find((p) => p.t >= sec - 2.5)?.rssMiB ?? null;
      row.result = { ...r, rssStartMiB: timeline[0].rssMiB, rss1MinMiB: at(60), rssEndMiB: timeline.at(-1).rssMiB };
      row.timeline = timeline;
      console.log(`    ${Math.round(r.rps)} req/s, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}, RSS ${row.result.rssStartMiB.toFixed(0)} → ${row.result.rssEndMiB.toFixed(0)} MiB`);
    } catch (e) {
      Object.assign(row, { status: 'failed', note: e.message });
    } finally {
      await shutdown(server);
    }
  }
  return { title: s.title, kind: 'soak', seconds: cfg.soakSeconds, concurrency: s.concurrency, rows };
}

/**
 * One row per contender of scenario `id` (those `--only` keeps): a
 * contender this run cannot have gets its reason as status; for the others
 * `measure(c, row)` records runs, median, or a failed status in the row.
 */
async function contenderRows(id, measure, extra = {}) {
  const rows = [];
  for (const cid of SCENARIOS[id].contenders.filter((c) => !cfg.only || cfg.only.includes(c))) {
    const c = CONTENDERS[cid];
    const row = { contender: cid, name: c.name, status: 'ok', note: '', runs: [], ...extra };
    rows.push(row);
    const reason = unavailableReason(cid);
    if (reason) Object.assign(row, { status: 'not available', note: reason });
    else await measure(c, row, cid);
  }
  return rows;
}

/**
 * The skeleton of the scenarios that measure whole runs (streams, open
 * loop, a lone request): for each contender, `cfg.runs` runs, each on a
 * freshly started server; `measure(c, server, base, run)` returns the run's
 * record. A contender that cannot start or fails a run gets that status and
 * note; the others get the median of their runs (`flatten` first turns a run
 * record into plain numbers).
 */
async function perRunScenario(id, measure, { flatten = (r) => r, extra = {} } = {}) {
  return contenderRows(
    id,
    async (c, row, cid) => {
      for (let run = 1; run <= cfg.runs && row.status === 'ok'; run++) {
        let launched;
        try {
          launched = await launch(cid, `s${id}-${cid}-run${run}`);
        } catch (e) {
          Object.assign(row, { status: e.unavailable ? 'not available' : 'failed', note: e.message });
          break;
        }
        const { server, base } = launched;
        try {
          row.runs.push(await measure(c, server, base, run));
        } catch (e) {
          Object.assign(row, { status: 'failed', note: e.message });
        } finally {
          await shutdown(server);
        }
      }
      if (row.status === 'ok') row.median = summarise(row.runs.map(flatten));
    },
    extra,
  );
}

/** Streams (scenario 8): chunks/s and time to first chunk, per contender, median of runs. */
async function streamScenario(id) {
  const s = SCENARIOS[id];
  const rows = await perRunScenario(
    id,
    async (c, server, base) => {
      const body = readFileSync(c.body.file);
      const load = { url: `${base}${c.route}`, body, contentType: c.body.contentType, connections: s.concurrency, chunkFrames: c.chunkFrames };
      await runStreams({ ...load, seconds: cfg.warmup });
      resetPeak(server.pid);
      const r = await runStreams({ ...load, seconds: cfg.duration });
      console.log(`[${id}] ${c.name}: ${Math.round(r.chunksPerS)} chunks/s, first chunk p50 ${r.ttfcP50Ms?.toFixed(2)} ms p99 ${r.ttfcP99Ms?.toFixed(2)} ms, errors ${r.errors}`);
      return { ...r, peakRssMiB: peakRssMiB(server.pid) };
    },
    { extra: { concurrency: s.concurrency } },
  );
  return { title: s.title, kind: 'stream', reference: s.reference, concurrency: s.concurrency, rows };
}

/**
 * Open loop (scenario 9): each contender's closed-loop peak at 64
 * connections, then vegeta at fixed shares of that peak. The p99 at a fixed
 * rate is what a service with that much traffic sees.
 */
async function openScenario(id) {
  const s = SCENARIOS[id];
  const rows = await perRunScenario(
    id,
    async (c, server, base, run) => {
      const p = await probe(base, c);
      if (p.status !== 200) throw new Error(`probe POST ${c.route} answered ${p.status}: ${p.body}`);
      await drive(base, c, s.peakConnections, cfg.warmup);
      const peak = await drive(base, c, s.peakConnections, cfg.duration);
      const result = { peakRps: peak.rps };
      for (const share of s.shares) {
        const r = await runVegeta({ url: `${base}${c.route}`, bodyFile: c.body.file, contentType: c.body.contentType, rate: peak.rps * share, seconds: cfg.duration, cpus: LOAD_CPUS });
        result[`at${share * 100}`] = r;
        console.log(
          `[${id}] ${c.name} run ${run}: ${Math.round(share * 100)}% of ${Math.round(peak.rps)} req/s -> sent ${Math.round(r.sentRps)}/s, p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, errors ${r.errors}`,
        );
      }
      return result;
    },
    {
      // { at50: { p99Ms } } -> { 'at50.p99Ms' }, so each figure gets its median.
      flatten: (r) => Object.fromEntries(Object.entries(r).flatMap(([k, v]) => (typeof v === 'number' ? [[k, v]] : Object.entries(v).map(([f, x]) => [`${k}.${f}`, x])))),
    },
  );
  return { title: s.title, kind: 'open', shares: s.shares, peakConnections: s.peakConnections, rows };
}

/** POSTs `body` over one kept-alive connection; resolves to the client latency (ms) and the Server-Timing parts. */
function timedPost(agent, url, body, contentType) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const timing = Object.fromEntries(
          String(res.headers['server-timing'] ?? '')
            .split(',')
            .map((p) => p.trim().match(/^(\w+);dur=([\d.]+)/))
            .filter(Boolean)
            .map((m) => [m[1], Number(m[2])]),
        );
        resolve({ status: res.statusCode, ms, timing });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A lone request (scenario 10): one client, one request at a time, timed by
 * the client and broken down by the server's Server-Timing header (queue,
 * handler, total). What is left of the client's time beyond the server's
 * total is the HTTP exchange itself (loopback, the client, the socket
 * write); the echo's row is that floor.
 */
async function loneScenario(id) {
  const s = SCENARIOS[id];
  const rows = await perRunScenario(id, async (c, server, base, run) => {
    const body = readFileSync(c.body.file);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const samples = [];
      const until = performance.now() + (cfg.warmup + cfg.duration) * 1000;
      const measureFrom = performance.now() + cfg.warmup * 1000;
      while (performance.now() < until) {
        const r = await timedPost(agent, `${base}${c.route}`, body, c.body.contentType);
        if (r.status !== 200) throw new Error(`POST ${c.route} answered ${r.status}`);
        if (performance.now() >= measureFrom) samples.push(r);
      }
      const sorted = samples.map((x) => x.ms).sort((a, b) => a - b);
      const part = (name) => median(samples.map((x) => x.timing[name]).filter((v) => v !== undefined));
      const result = {
        requests: samples.length,
        rps: samples.length / cfg.duration,
        clientP50Ms: median(sorted),
        clientP99Ms: sorted[Math.floor(sorted.length * 0.99)],
        serverTotalMs: part('total'),
        queueMs: part('queue'),
        handlerMs: part('handler'),
      };
      console.log(
        `[${id}] ${c.name} run ${run}: ${Math.round(result.rps)} req/s, client p50 ${result.clientP50Ms.toFixed(3)} ms p99 ${result.clientP99Ms.toFixed(3)} ms, server total ${result.serverTotalMs ?? '–'} (queue ${result.queueMs ?? '–'}, handler ${result.handlerMs ?? '–'})`,
      );
      return result;
    } finally {
      agent.destroy();
    }
  });
  return { title: s.title, kind: 'lone', rows };
}

/**
 * Memory per loaded model (scenario 14): each contender started on a
 * repository of one copy of the iris model, then of 50, RSS (the whole
 * process tree) read once it is ready and has settled for a second; the
 * difference over the 49 extra models is the cost of one.
 */
async function memoryScenario(id) {
  const s = SCENARIOS[id];
  const [few, many] = MEMORY_MODELS;
  const rows = await contenderRows(id, async (c, row, cid) => {
    const result = {};
    for (const n of [few, many]) {
      ctx.models = n;
      let launched;
      try {
        launched = await launch(cid, `s${id}-${cid}-${n}`);
      } catch (e) {
        Object.assign(row, { status: e.unavailable ? 'not available' : 'failed', note: `${n} models: ${e.message}` });
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
      result[`rss${n}MiB`] = rssMiB(launched.server.pid);
      result[`ready${n}S`] = launched.readyMs / 1000;
      await shutdown(launched.server);
    }
    if (row.status !== 'ok') return;
    result.perModelMiB = (result[`rss${many}MiB`] - result[`rss${few}MiB`]) / (many - few);
    console.log(`[${id}] ${c.name}: ${result[`rss${few}MiB`].toFixed(0)} MiB with ${few}, ${result[`rss${many}MiB`].toFixed(0)} MiB with ${many} (ready in ${result[`ready${many}S`].toFixed(1)} s): ${result.perModelMiB.toFixed(2)} MiB per model`);
    row.runs.push(result);
    row.median = result;
  });
  return { title: s.title, kind: 'memory', few, many, rows };
}

/**
 * A new version under load (scenario 17): vegeta sends at half the server's
 * closed-loop peak for 3 × the run duration; a third of the way in, version 2
 * is dropped into the watched repository. A probe asks every 20 ms which
 * version answers (`x-model-version`). "Steady" is the requests sent from the
 * first second until the drop; "switch" those sent from the drop until 2 s
 * after version 2 first answered (its load, the move of traffic and the
 * unload of version 1 all fall inside).
 */
async function reloadScenario(id) {
  const s = SCENARIOS[id];
  const rows = await perRunScenario(id, async (c, server, base, run) => {
    const p = await probe(base, c);
    if (p.status !== 200) throw new Error(`probe POST ${c.route} answered ${p.status}: ${p.body}`);
    await drive(base, c, s.peakConnections, cfg.warmup);
    const peak = await drive(base, c, s.peakConnections, cfg.duration);
    const seconds = 3 * cfg.duration;
    const body = readFileSync(c.body.file);
    let droppedAt = NaN;
    let switchedAt = NaN;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const res = await fetch(`${base}${c.route}`, { method: 'POST', headers: { 'content-type': c.body.contentType }, body }).catch(() => null);
        if (res && res.headers.get('x-model-version') === '2' && Number.isNaN(switchedAt)) switchedAt = Date.now();
        await res?.arrayBuffer();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const requests = await runVegetaRequests({
      url: `${base}${c.route}`,
      bodyFile: c.body.file,
      contentType: c.body.contentType,
      rate: peak.rps * s.share,
      seconds,
      cpus: LOAD_CPUS,
      onStart: async (started) => {
        await new Promise((r) => setTimeout(r, (seconds * 1000) / 3));
        droppedAt = Date.now();
        addVersion(ctx.reloadRepo, 2);
        void started;
      },
    });
    polling = false;
    await poll;
    if (Number.isNaN(switchedAt)) throw new Error('version 2 never answered');
    const t0 = requests[0]?.at ?? droppedAt;
    const steady = windowStats(requests, t0 + 1000, droppedAt);
    const over = windowStats(requests, droppedAt, switchedAt + 2000);
    const result = {
      rate: peak.rps * s.share,
      switchS: (switchedAt - droppedAt) / 1000,
      steadyP50Ms: steady.p50Ms,
      steadyP99Ms: steady.p99Ms,
      switchP50Ms: over.p50Ms,
      switchP99Ms: over.p99Ms,
      switchMaxMs: over.maxMs,
      p99Ratio: over.p99Ms / steady.p99Ms,
      errors: steady.errors + over.errors + windowStats(requests, switchedAt + 2000, Infinity).errors,
      switchRequests: over.requests,
    };
    console.log(
      `[${id}] ${c.name} run ${run}: ${Math.round(result.rate)} req/s; version 2 answered ${result.switchS.toFixed(2)} s after the drop; ` +
        `p99 steady ${steady.p99Ms.toFixed(2)} ms, over the switch ${over.p99Ms.toFixed(2)} ms (${result.p99Ratio.toFixed(2)}×), max ${over.maxMs.toFixed(1)} ms; errors ${result.errors}`,
    );
    return result;
  });
  return { title: s.title, kind: 'reload', rows };
}

/** Writes the scoring scenario's input once: `rows` iris-like rows with an id, by Polars in the peers' venv. */
function scoreInput(rows) {
  const file = join(scratch, `score-${rows}.parquet`);
  if (existsSync(file)) return file;
  const script = `
import numpy as np, polars as pl
rng = np.random.default_rng(11)
n = ${rows}
pl.DataFrame({"id": np.arange(n), "sepal_length": rng.uniform(4.3, 7.9, n), "sepal_width": rng.uniform(2.0, 4.4, n),
              "petal_length": rng.uniform(1.0, 6.9, n), "petal_width": rng.uniform(0.1, 2.5, n)}).write_parquet(${JSON.stringify(`${file}.tmp`)})`;
  execFileSync(PY, ['-c', script], { stdio: 'inherit' });
  renameSync(`${file}.tmp`, file);
  return file;
}

/**
 * Scoring a file (scenario 13): each contender is a command run `cfg.runs`
 * times on the same Parquet file (one warm-up run first, to fill the page
 * cache). Its own report gives the scoring time (after start-up) and peak
 * RSS; the harness adds the wall time of the whole command.
 */
async function scoreScenario(id) {
  const s = SCENARIOS[id];
  const input = scoreInput(s.rows);
  const rows = await contenderRows(id, async (c, row, cid) => {
    const spec = c.score(ctx);
    for (let run = 0; run <= cfg.runs && row.status === 'ok'; run++) {
      const output = join(scratch, `score-${cid}.parquet`);
      const env = { ...process.env, ...SERVER_ENV, ...spec.env, INPUT: input, OUTPUT: output, BATCH: String(s.batch) };
      const t0 = performance.now();
      const r = await runLoadTool(...pinned(SERVER_CPUS, spec.cmd, spec.args), 600, { env });
      const wallS = (performance.now() - t0) / 1000;
      const line = r.out.trim().split('\n').pop() ?? '';
      let report;
      try {
        report = JSON.parse(line);
      } catch {
        Object.assign(row, { status: 'failed', note: `exit ${r.code}: ${lastLine(r.err || r.out)}` });
        break;
      }
      if (report.scored !== s.rows) {
        Object.assign(row, { status: 'failed', note: `scored ${report.scored} of ${s.rows} rows` });
        break;
      }
      if (run === 0) continue; // warm-up
      const result = { rowsPerS: report.rowsPerSecond, scoreS: report.seconds, wallS, peakRssMiB: report.maxRssKiB / 1024 };
      console.log(`[${id}] ${c.name} run ${run}: ${Math.round(result.rowsPerS)} rows/s (${result.scoreS.toFixed(2)} s scoring, ${wallS.toFixed(2)} s wall), peak RSS ${result.peakRssMiB.toFixed(0)} MiB`);
      row.runs.push(result);
    }
    if (row.status === 'ok') row.median = summarise(row.runs);
  });
  const ref = rows.find((r) => r.contender === s.reference);
  return { title: s.title, kind: 'score', reference: s.reference, referenceName: ref?.name, referenceRowsPerS: ref?.median?.rowsPerS ?? null, rows };
}

// ---------------------------------------------------------------------------

async function main() {
  const started = new Date();
  if (cfg.pin === 'split') await pinSelf(LOAD_CPUS);

  // 1. Installs (idempotent) and builds.
  if (mode === 'smoke') ensureWrk();
  else if (!flags['no-setup']) setup();
  const wanted = new Set(cfg.scenarios.flatMap((s) => SCENARIOS[s].contenders).filter((c) => !cfg.only || cfg.only.includes(c)));
  ctx.benchDir = join(import.meta.dirname);
  if (wanted.has('actix-echo')) {
    try {
      ctx.echoBin = buildEcho({ release: mode !== 'smoke' });
    } catch (e) {
      ctx.echoError = e.message;
    }
  }
  if ([...wanted].some((c) => CONTENDERS[c].redesmyn)) {
    try {
      const pkg = buildRedesmyn(cfg.redesmynBuild, { rev: flags.rev ?? null });
      ctx.serversDir = compileServers(cfg.redesmynBuild, pkg, mode === 'smoke' ? ['redesmyn-noop.ts'] : null);
    } catch (e) {
      ctx.redesmynError = `redesmyn could not be built: ${e.message}`;
      console.error(ctx.redesmynError);
    }
  }

  const machine = describeMachine();
  if (flags.rev) machine.redesmyn = `${revision(flags.rev) ?? flags.rev} (release build of that commit, --rev ${flags.rev})`;
  else machine.redesmyn += ` (${cfg.redesmynBuild} build of the working tree)`;
  const results = {
    started: started.toISOString(),
    mode,
    settings: {
      runs: cfg.runs,
      durationS: cfg.duration,
      warmupS: cfg.warmup,
      soakS: cfg.scenarios.includes(5) ? cfg.soakSeconds : undefined,
      pinning,
      loadGenerator: 'wrk, 1 thread, closed loop (each connection sends its next request when the previous answer arrives), --timeout 10s; gRPC scenario: h2load (1 thread, one stream per connection, closed loop) POSTing a pre-encoded ModelInfer call, after a ghz probe that checks the calls answer gRPC OK; open-loop scenario: vegeta at fixed rates',
      requestBody: 'one iris record per request: [{"sepal_length":5.9,"sepal_width":3.0,"petal_length":5.1,"petal_width":1.8}] (MLServer: the same record as a V2 FP64 [1,4] tensor)',
      batching: `redesmyn ${BATCH.maxSize} rows, ${BATCH.maxDelayMs} ms window (its defaults); MLServer's adaptive batching ${MLSERVER_BATCH.maxSize} rows or ${MLSERVER_BATCH.maxDelayMs} ms`,
      mlserverParallelWorkers: MLSERVER_PARALLEL_WORKERS,
      redesmynBuild: cfg.redesmynBuild,
      workers: 'one HTTP worker per server (redesmyn WORKERS=1, actix-echo 1, uvicorn 1, Fastify 1 process)',
    },
    machine,
    scenarios: {},
  };
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const tmp = join(RESULTS, `${stamp}.json.tmp`);
  if (mode !== 'smoke') mkdirSync(RESULTS, { recursive: true });

  const runners = {
    load: loadScenario,
    cold: coldScenario,
    stream: streamScenario,
    open: openScenario,
    lone: loneScenario,
    score: scoreScenario,
    memory: memoryScenario,
    reload: reloadScenario,
    soak: soakScenario,
  };
  for (const id of cfg.scenarios) {
    const kind = SCENARIOS[id].kind;
    console.log(`\n== ${id}. ${SCENARIOS[id].title}`);
    results.scenarios[id] = await runners[kind](id);
    if (mode !== 'smoke') writeFileSync(tmp, JSON.stringify(results, null, 2));
  }
  results.finished = new Date().toISOString();

  const md = [
    `# redesmyn benchmark, ${results.started.slice(0, 19).replace('T', ' ')} UTC (${mode})`,
    '',
    machineMarkdown(machine),
    `- **Method**: ${pinning}. ${results.settings.loadGenerator}. ${cfg.runs} run(s) of ${cfg.duration} s per contender and concurrency after a ${cfg.warmup} s warm-up, each run on a freshly started server; the table shows medians (errors: the total over all runs).`,
    `- **Request**: ${results.settings.requestBody}. Batching: ${results.settings.batching}. ${results.settings.workers}.`,
    '',
    ...Object.entries(results.scenarios).map(([id, s]) => `${scenarioMarkdown(id, s)}\n`),
  ].join('\n');

  console.log(`\n${md}`);
  if (mode !== 'smoke') {
    writeFileSync(join(RESULTS, `${stamp}.md`), md);
    writeFileSync(tmp, JSON.stringify(results, null, 2));
    renameSync(tmp, join(RESULTS, `${stamp}.json`));
    console.log(`wrote bench/results/${stamp}.json and .md`);
  }

  if (mode === 'smoke') {
    // The smoke run fails when the harness or redesmyn cannot serve, never on timings.
    const rows = Object.values(results.scenarios).flatMap((s) => s.rows);
    const bad = rows.filter((r) => r.status !== 'ok' || !r.runs.length || r.runs.some((x) => x.requests === 0 || x.non2xx > 0));
    if (bad.length) {
      console.error(`smoke: ${bad.map((r) => `${r.contender}: ${r.status} ${r.note}`).join('; ')}`);
      return 1;
    }
    console.log('smoke: ok');
  }
  return 0;
}

main()
  .then((code) => cleanup().then(() => process.exit(code)))
  .catch((e) => {
    console.error(e);
    cleanup().finally(() => process.exit(1));
  });

