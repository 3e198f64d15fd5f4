#!/usr/bin/env node
// A plain static HTTP server for the tests of `http(s)://` artifacts: files
// under a root folder, with GET and HEAD, Content-Length, Last-Modified, a
// strong ETag (of the content), single byte ranges and If-Match (412 when the
// file changed). Nothing to install: Node's own http module, in-process.
//
//   import { startHttpServer } from './scripts/http-server.mjs';
//   const web = await startHttpServer({ root });  // { url, root, stop(), intercept }
//   web.intercept = (req, res) => false;           // answer a request yourself (return true)
//
//   node scripts/http-server.mjs serve --data-dir DIR [--port N]

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveFromCli } from './emulator.mjs';

function etagOf(bytes) {
  return `"${createHash('md5').update(bytes).digest('hex')}"`;
}

/** Start a server on a free loopback port (or `port`) serving `root` (default a fresh temporary folder). */
export async function startHttpServer(options = {}) {
  const tmp = options.root ?? options.dataDir ? undefined : await fsp.mkdtemp(path.join(os.tmpdir(), 'redesmyn-http-'));
  const root = path.resolve(options.root ?? options.dataDir ?? tmp);
  const handle = { root, intercept: undefined, requests: [] };
  const server = http.createServer(async (req, res) => {
    handle.requests.push(`${req.method} ${req.url}`);
    if (handle.intercept?.(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(root, rel);
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    let bytes;
    let stat;
    try {
      stat = await fsp.stat(file);
      if (!stat.isFile()) throw new Error('not a file');
      bytes = await fsp.readFile(file);
    } catch {
      res.writeHead(404).end();
      return;
    }
    const etag = etagOf(bytes);
    const match = req.headers['if-match'];
    if (match && match !== '*' && !match.split(',').map((s) => s.trim()).includes(etag)) {
      res.writeHead(412).end();
      return;
    }
    const headers = { ETag: etag, 'Last-Modified': stat.mtime.toUTCString(), 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let status = 200;
    let body = bytes;
    if (range) {
      const start = range[1] === '' ? Math.max(0, bytes.length - Number(range[2])) : Number(range[1]);
      const end = range[1] === '' || range[2] === '' ? bytes.length - 1 : Math.min(Number(range[2]), bytes.length - 1);
      if (start > end || start >= bytes.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` }).end();
        return;
      }
      status = 206;
      body = bytes.subarray(start, end + 1);
      headers['Content-Range'] = `bytes ${start}-${end}/${bytes.length}`;
    }
    headers['Content-Length'] = String(body.length);
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  let stopping;
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  return Object.assign(handle, {
    url: `http://127.0.0.1:${port}`,
    port,
    /** Close the server and cut every open connection (a download in flight fails). */
    stop() {
      stopping ??= new Promise((resolve) => {
        server.close(async () => {
          if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
          resolveExit({ code: 0, signal: null });
          resolve();
        });
        server.closeAllConnections();
      });
      return stopping;
    },
    exited,
    logs: () => handle.requests.join('\n'),
    /** Write a file under the root (folders made as needed). */
    put(key, bytes) {
      const file = path.join(root, key);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, bytes);
      return etagOf(bytes);
    },
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  serveFromCli('http-server', process.argv.slice(2), async () => 'nothing to install', startHttpServer);
}
