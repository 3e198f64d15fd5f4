// The floor for any Node.js server's cold start: node:http alone, no
// framework, no addon. GET /health/ready answers 200 as soon as it listens.
//
//   PORT=3000 node peers/node-http.mjs
import { createServer } from 'node:http';

createServer((req, res) => {
  res.writeHead(req.url === '/health/ready' ? 200 : 404, { 'content-type': 'application/json' });
  res.end('{"status":"ready"}');
}).listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
