#!/usr/bin/env node
// A Google Cloud Storage emulator for the tests: fake-gcs-server (the Go
// module github.com/fsouza/fake-gcs-server), built with `go install` at a
// pinned release and cached under $HOME/.cache/redesmyn-tools (or
// $REDESMYN_TOOLS_DIR). It speaks the GCS JSON API over plain HTTP and takes
// any credentials. Clients (object_store among them) write small objects
// with the XML API's `PUT /bucket/object`, which fake-gcs-server does not
// have: a small proxy in front of it turns that one request into the JSON
// API's media upload and passes every other request through unchanged.
//
//   import { startGcsServer } from './scripts/gcs-server.mjs';
//   const gcs = await startGcsServer();  // { endpoint, dataDir, options, env, stop() }
//
//   node scripts/gcs-server.mjs install         build it if it is not cached; print its path
//   node scripts/gcs-server.mjs serve           start one, print its JSON config, stop on Ctrl-C

import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { goInstall, serveFromCli, startServer, stopper, toolsDir } from './emulator.mjs';

export const FAKE_GCS_MODULE = 'github.com/fsouza/fake-gcs-server';
export const FAKE_GCS_VERSION = 'v1.56.1';

export function gcsServerBinaryPath() {
  return path.join(toolsDir(), `fake-gcs-server-${FAKE_GCS_VERSION}`, 'fake-gcs-server');
}

export function installGcsServer({ log } = {}) {
  return goInstall({ pkg: FAKE_GCS_MODULE, version: FAKE_GCS_VERSION, bin: gcsServerBinaryPath(), check: ['-help'], log, label: 'gcs-server' });
}

/**
 * Start an empty server on a free loopback port, its objects in a fresh
 * temporary folder (or `dataDir`, kept on stop).
 */
export async function startGcsServer(options = {}) {
  const bin = await installGcsServer();
  const { proc, port, tmp, dataDir } = await startServer({
    label: 'gcs-server',
    prefix: 'redesmyn-gcs-',
    cmd: bin,
    argsFor: (port, dataDir) => ['-scheme', 'http', '-host', '127.0.0.1', '-port', String(port), '-public-host', `127.0.0.1:${port}`,
      '-backend', 'filesystem', '-filesystem-root', dataDir, '-log-level', 'error'],
    options,
    urlPath: '/storage/v1/b',
  });
  const front = await xmlPutProxy(port);
  const endpoint = front.url;
  return {
    endpoint,
    dataDir,
    pid: proc.child.pid,
    // object_store's GCS options: a service account key that points at the
    // emulator and sends no OAuth token (the emulator takes any).
    options: {
      google_service_account_key: JSON.stringify({ private_key: '', private_key_id: '', client_email: '', disable_oauth: true, gcs_base_url: endpoint }),
      allow_http: 'true',
    },
    logs: proc.log,
    exited: proc.exited,
    stop: stopper(proc, async () => {
      await front.close();
      await fsp.rm(tmp, { recursive: true, force: true });
    }),
  };
}

/**
 * A loopback proxy to the emulator on `port` that answers the XML API's
 * simple upload (`PUT /bucket/object`, no query) with a JSON API media
 * upload of the same bytes, and the ETag header GCS sends.
 */
async function xmlPutProxy(port) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const xmlPut = req.method === 'PUT' && url.search === '' && /^\/[^/]+\/.+/.test(url.pathname);
    let target = req.url;
    let method = req.method;
    if (xmlPut) {
      const [, bucket, ...rest] = url.pathname.split('/');
      const name = decodeURIComponent(rest.join('/'));
      target = `/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`;
      method = 'POST';
    }
    const upstream = http.request({ host: '127.0.0.1', port, method, path: target, headers: { ...req.headers, host: `127.0.0.1:${port}` } }, (up) => {
      if (!xmlPut || up.statusCode !== 200) {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        return;
      }
      let body = '';
      up.on('data', (d) => (body += d));
      up.on('end', () => {
        const meta = JSON.parse(body);
        res.writeHead(200, { ETag: `"${meta.etag}"`, 'x-goog-generation': String(meta.generation ?? ''), 'Content-Length': '0' }).end();
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  serveFromCli('gcs-server', process.argv.slice(2), installGcsServer, startGcsServer);
}
