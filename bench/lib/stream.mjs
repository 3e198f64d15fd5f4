// The streaming load driver: `connections` clients, each opening one SSE
// stream after another for `seconds` (closed loop), counting `data:` frames
// and timing each stream's first frame. Node's fetch reads the streams; the
// same driver runs against every contender.

/** Percentile of sorted values (nearest rank). */
function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function oneStream(url, body, contentType) {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, accept: 'text/event-stream' }, body });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    return { ok: false, status: res.status };
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let frames = 0;
  let first = null;
  let failed = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!frame.startsWith('data:')) continue;
      if (frame.includes('"error"')) failed = true;
      if (first === null) first = performance.now() - t0;
      frames++;
    }
  }
  return { ok: !failed, frames, firstMs: first, totalMs: performance.now() - t0 };
}

/**
 * Runs the load. `chunkFrames(frames)` says how many of a stream's frames
 * are chunks (redesmyn adds a row-end frame). Returns chunks/s, streams/s,
 * time-to-first-chunk p50/p99 and errors.
 */
export async function runStreams({ url, body, contentType, connections, seconds, chunkFrames = (n) => n }) {
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
          const r = await oneStream(url, body, contentType);
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
