#!/usr/bin/env node
// A real S3-compatible server for the tests: Versity S3 Gateway (versitygw)
// with its posix backend, built from source with `go install` at a pinned
// release and cached under $HOME/.cache/redesmyn-tools (or
// $REDESMYN_TOOLS_DIR), so only the first run on a machine pays for the build
// (2.5 to 5 minutes on 2 cores, about 3 s with a warm Go build cache); later
// runs find the binary and start a server in about 0.1 s. Needs Go >= 1.25.
//
// Library:
//   import { startS3Server, installS3Server } from './scripts/s3-server.mjs';
//   const s3 = await startS3Server();  // { endpoint, region, accessKeyId, secretAccessKey, env, stop() }
//   ...
//   await s3.stop();
//
// CLI:
//   node scripts/s3-server.mjs install            build the server if it is not cached; print its path
//   node scripts/s3-server.mjs serve [--data-dir DIR] [--port N]
//                                                 start one, print its JSON config, stop on SIGINT/SIGTERM
//
// Environment:
//   REDESMYN_TOOLS_DIR   where built tools are cached (default $HOME/.cache/redesmyn-tools)
//   REDESMYN_VERSITYGW   path of an existing versitygw binary to use instead of building one
//   GO                   the go command (default `go` on PATH)
//
// The server speaks the AWS S3 API: SigV4 auth, path-style addressing, MD5
// ETags, Last-Modified, HEAD, ranges, ListObjectsV2 with prefix/delimiter and
// conditional requests (If-Match / If-None-Match on GET, and on PUT).

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, goInstall, launch as launchProcess, pidAlive, serveFromCli, signalGroup, stopper, toolsDir, waitUntilUp } from './emulator.mjs';

export { toolsDir };
export const VERSITYGW_MODULE = 'github.com/versity/versitygw';
export const VERSITYGW_VERSION = 'v1.8.0';
const PACKAGE = `${VERSITYGW_MODULE}/cmd/versitygw`;

const DEFAULT_REGION = 'us-east-1';
const START_TIMEOUT_MS = 20_000;

/** Where the pinned server binary lives once installed. */
export function serverBinaryPath() {
  if (process.env.REDESMYN_VERSITYGW) return path.resolve(process.env.REDESMYN_VERSITYGW);
  return path.join(toolsDir(), `versitygw-${VERSITYGW_VERSION}`, 'versitygw');
}

/**
 * Make sure the pinned versitygw binary is installed (`go install` into a
 * private folder, then an atomic rename, under a lock); return its path.
 * Idempotent and safe to call from several processes at once.
 * @param {{ log?: (msg: string) => void }} [options]
 * @returns {Promise<string>}
 */
export async function installS3Server({ log } = {}) {
  const bin = serverBinaryPath();
  if (process.env.REDESMYN_VERSITYGW) {
    if (fs.existsSync(bin)) return bin;
    throw new Error(`s3-server: REDESMYN_VERSITYGW=${bin} is not an executable file`);
  }
  return goInstall({ pkg: PACKAGE, version: VERSITYGW_VERSION, bin, log, label: 's3-server' });
}

function launch(bin, { port, region, accessKeyId, secretAccessKey, gwroot, sidecar, cwd }) {
  const args = ['--port', `127.0.0.1:${port}`, '--region', region, '--quiet', 'posix'];
  if (sidecar) args.push('--sidecar', sidecar);
  args.push(gwroot);
  const env = {
    ...process.env,
    ROOT_ACCESS_KEY_ID: accessKeyId,
    ROOT_SECRET_ACCESS_KEY: secretAccessKey,
  };
  // The server's own configuration comes only from the arguments above.
  for (const k of Object.keys(env)) if (k.startsWith('VGW_')) delete env[k];
  return launchProcess(bin, args, { cwd, env });
}

// ---------------------------------------------------------------------------
// Start / stop.

/**
 * @typedef {object} S3Server
 * @property {string} endpoint         e.g. http://127.0.0.1:40123 (path-style: bucket is the first path segment)
 * @property {string} region           us-east-1
 * @property {string} accessKeyId
 * @property {string} secretAccessKey
 * @property {string} dataDir          the posix backend's root: one sub-folder per bucket
 * @property {number} pid
 * @property {Record<string, string>} env   AWS_* variables for a child process using object_store's from_env()
 * @property {() => string} logs            the server's output so far (it runs with --quiet: errors only)
 * @property {Promise<{ code: number | null, signal: string | null }>} exited  settles when the server process ends
 * @property {() => Promise<void>} stop     kills the server and removes its temporary folder; idempotent
 */

/**
 * Start a fresh server on a free loopback port with an empty data folder.
 * @param {{ dataDir?: string, port?: number, region?: string, accessKeyId?: string, secretAccessKey?: string }} [options]
 *   dataDir: use this folder (created if absent, kept on stop) instead of a temporary one.
 * @returns {Promise<S3Server>}
 */
export async function startS3Server(options = {}) {
  const bin = await installS3Server();
  const region = options.region ?? DEFAULT_REGION;
  const accessKeyId = options.accessKeyId ?? 'redesmyn-test';
  const secretAccessKey = options.secretAccessKey ?? `redesmyn-test-${randomBytes(12).toString('hex')}`;

  sweepAbandoned();
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), TMP_PREFIX));
  await fsp.writeFile(path.join(tmp, 'owner.pid'), String(process.pid));
  const gwroot = options.dataDir ? path.resolve(options.dataDir) : path.join(tmp, 'data');
  await fsp.mkdir(gwroot, { recursive: true });
  let sidecar; // metadata in xattrs by default; in files when the filesystem has no user xattrs

  let lastError = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = options.port ?? (await freePort());
    const proc = launch(bin, { port, region, accessKeyId, secretAccessKey, gwroot, sidecar, cwd: tmp });
    if (await waitUntilUp(proc, port, { timeoutMs: START_TIMEOUT_MS })) {
      const server = makeHandle({ proc, port, region, accessKeyId, secretAccessKey, gwroot, tmp });
      return server;
    }
    signalGroup(proc.child, 'SIGKILL');
    await proc.exited;
    lastError = proc.log();
    if (/xattr check failed/i.test(lastError) && !sidecar) {
      sidecar = path.join(tmp, 'meta');
      await fsp.mkdir(sidecar, { recursive: true });
      continue;
    }
    if (/address already in use/i.test(lastError) && options.port === undefined) continue; // lost a race for the port
    break;
  }
  await fsp.rm(tmp, { recursive: true, force: true });
  throw new Error(`s3-server: versitygw did not start:\n${lastError.slice(-4000)}`);
}

const TMP_PREFIX = 'redesmyn-s3-';

/** Remove the temporary folders of servers whose owner died without stop() (killed, crashed). */
function sweepAbandoned() {
  let names = [];
  try {
    names = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(os.tmpdir(), name);
    try {
      const owner = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
      if (owner > 0 && !pidAlive(owner)) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // not ours, or being set up right now
    }
  }
}

function makeHandle({ proc, port, region, accessKeyId, secretAccessKey, gwroot, tmp }) {
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    dataDir: gwroot,
    pid: proc.child.pid,
    env: {
      AWS_ENDPOINT: endpoint,
      AWS_DEFAULT_REGION: region,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_ALLOW_HTTP: 'true',
      AWS_VIRTUAL_HOSTED_STYLE_REQUEST: 'false',
    },
    logs: () => proc.log(),
    exited: proc.exited,
    stop: stopper(proc, () => fs.rmSync(tmp, { recursive: true, force: true })),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  serveFromCli('s3-server', process.argv.slice(2), installS3Server, startS3Server);
}
