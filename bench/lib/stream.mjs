// The streaming load driver: `connections` clients, each opening one SSE
// stream after another for `seconds` (closed loop), counting `data:` frames
// and timing each stream's first frame, over raw HTTP/1.1 sockets; the same
// driver runs against every contender.
import { connect } from 'node:net';

/** Percentile of sorted values (nearest rank). */
function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * One stream on a fresh connection (`Connection: close`, so the answer ends
 * with the socket): counts `data:` frames in the raw bytes and times the
 * first. Reading raw bytes keeps the driver cheap (fetch's stream and text
 * decoding cost more per frame than the servers do).
 */
function oneStream(target, body, contentType) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = connect(target.port, target.host);
    let head = null;
    let tail = Buffer.alloc(0);
    let frames = 0;
    let first = null;
    let failed = false;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        `POST ${target.path} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: ${contentType}\r\naccept: text/event-stream\r\n` +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      );
      socket.write(body);
    });
    socket.on('data', (chunk) => {
      if (head === null) {
        head = chunk.subarray(0, 12).toString('latin1');
        if (!head.startsWith('HTTP/1.1 200')) failed = true;
      }
      // Keep the last bytes of the previous read: a marker may span two reads.
      const data = tail.length ? Buffer.concat([tail, chunk]) : chunk;
      for (let at = data.indexOf(DATA); at >= 0; at = data.indexOf(DATA, at + DATA.length)) {
        if (first === null) first = performance.now() - t0;
        frames++;
      }
      if (data.indexOf(ERROR) >= 0) failed = true;
      tail = data.subarray(Math.max(0, data.length - (ERROR.length - 1)));
      // A marker inside the kept tail must not be counted twice.
      if (tail.indexOf(DATA) >= 0) tail = tail.subarray(tail.indexOf(DATA) + DATA.length);
    });
    socket.on('error', () => {
      failed = true;
    });
    socket.on('close', () => resolve({ ok: !failed && head !== null, frames, firstMs: first, totalMs: performance.now() - t0 }));
  });
}

const DATA = Buffer.from('data:');
const ERROR = Buffer.from('"error"');

/**
 * Runs the load. `chunkFrames(frames)` says how many of a stream's frames
 * are chunks (redesmyn adds a row-end frame). Returns chunks/s, streams/s,
 * time-to-first-chunk p50/p99 and errors.
 */
export async function runStreams({ url, body, contentType, connections, seconds, chunkFrames = (n) => n }) {
  const parsed = new URL(url);
  const target = { host: parsed.hostname, port: Number(parsed.port), path: parsed.pathname };
  const until = performance.now() + seconds * 1000;
  const firsts = [];
  let chunks = 0;
  let streams = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        try {
          const r = await oneStream(target, body, contentType);
          if (!r.ok) {
            errors++;
            continue;
          }
          streams++;
          chunks += chunkFrames(r.frames);
          if (r.firstMs !== null) firsts.push(r.firstMs);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  firsts.sort((a, b) => a - b);
  return {
    chunksPerS: chunks / elapsed,
    streamsPerS: streams / elapsed,
    ttfcP50Ms: pct(firsts, 50),
    ttfcP99Ms: pct(firsts, 99),
    errors,
    streams,
    seconds: elapsed,
  };
}
