// Medians and Markdown tables.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Per-field medians of a list of run records (errors are summed instead). */
export function summarise(runs) {
  if (runs.length === 0) return null;
  const out = {};
  for (const key of Object.keys(runs[0])) {
    if (key === 'errors') out.errors = runs.reduce((s, r) => s + (r.errors ?? 0), 0);
    else if (typeof runs[0][key] === 'number' || runs[0][key] === null) out[key] = median(runs.map((r) => r[key]));
  }
  return out;
}

const num = (x, digits) => (x == null ? '–' : x.toFixed(digits));
export const ms = (x) => (x == null ? '–' : x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const int = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));

function table(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? ' :-- ' : ' --: ')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

export function loadTable(scenario) {
  const head = ['Contender', 'Conn.', 'req/s', 'vs ref.', 'p50 ms', 'p99 ms', 'p99.9 ms', 'Errors', 'Mean batch', 'Rows / batch', 'Peak RSS MiB', 'CPU s / 1k req'];
  const rows = [];
  const reported = new Set();
  for (const row of scenario.rows) {
    if (row.status !== 'ok') {
      // One line for a contender that could not run at all.
      if (reported.has(row.contender)) continue;
      reported.add(row.contender);
      rows.push([row.name, 'all', `**${row.status}**: ${row.note}`, '', '', '', '', '', '', '', '', '']);
      continue;
    }
    const m = row.median;
    const ref = scenario.rows.find((r) => r.contender === scenario.reference && r.concurrency === row.concurrency && r.status === 'ok');
    const ratio = ref && ref.median.rps ? `${(m.rps / ref.median.rps).toFixed(2)}×` : '–';
    rows.push([
      row.name,
      String(row.concurrency),
      `${int(m.rps)}${m.wrkCpuPct > 90 ? ' †' : ''}`,
      ratio,
      ms(m.p50Ms),
      ms(m.p99Ms),
      ms(m.p999Ms),
      String(m.errors),
      m.meanBatch == null ? '–' : num(m.meanBatch, 1),
      m.rowsPerBatch == null ? '–' : num(m.rowsPerBatch, 1),
      num(m.peakRssMiB, 0),
      num(m.cpuSecPer1k, 3),
    ]);
  }
  return table(head, rows);
}

export function coldTable(scenario) {
  const head = ['Contender', 'Ready after ms (median)', 'min', 'max', 'RSS at ready MiB'];
  const rows = scenario.rows.map((row) =>
    row.status !== 'ok'
      ? [row.name, `**${row.status}**: ${row.note}`, '', '', '']
      : [row.name, ms(row.median.readyMs), ms(row.min), ms(row.max), num(row.median.rssMiB, 0)],
  );
  return table(head, rows);
}

export function soakTable(scenario) {
  const head = ['Contender', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'Errors', 'RSS start MiB', 'RSS 1 min MiB', 'RSS end MiB', 'Peak RSS MiB'];
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, `**${row.status}**: ${row.note}`, '', '', '', '', '', '', '', ''];
    const r = row.result;
    return [
      row.name,
      int(r.rps),
      ms(r.p50Ms),
      ms(r.p99Ms),
      ms(r.p999Ms),
      String(r.errors),
      num(r.rssStartMiB, 0),
      num(r.rss1MinMiB, 0),
      num(r.rssEndMiB, 0),
      num(r.peakRssMiB, 0),
    ];
  });
  return table(head, rows);
}

export function openTable(scenario) {
  const head = ['Contender', 'Closed-loop peak req/s', 'Rate', 'sent req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Errors'];
  const rows = [];
  for (const row of scenario.rows) {
    if (row.status !== 'ok') {
      rows.push([row.name, `**${row.status}**: ${row.note}`, '', '', '', '', '', '', '']);
      continue;
    }
    const m = row.median;
    for (const share of scenario.shares) {
      const k = `at${share * 100}`;
      rows.push([
        row.name,
        int(m.peakRps),
        `${share * 100}%`,
        int(m[`${k}.sentRps`]),
        ms(m[`${k}.p50Ms`]),
        ms(m[`${k}.p90Ms`]),
        ms(m[`${k}.p99Ms`]),
        ms(m[`${k}.maxMs`]),
        String(m[`${k}.errors`] ?? 0),
      ]);
    }
  }
  return table(head, rows);
}

export function loneTable(scenario) {
  const head = ['Contender', 'req/s', 'client p50 ms', 'client p99 ms', 'server total ms', 'queue ms', 'handler ms', 'outside the server ms'];
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, `**${row.status}**: ${row.note}`, '', '', '', '', '', ''];
    const m = row.median;
    const outside = m.serverTotalMs == null ? null : m.clientP50Ms - m.serverTotalMs;
    return [row.name, int(m.rps), ms(m.clientP50Ms), ms(m.clientP99Ms), ms(m.serverTotalMs), ms(m.queueMs), ms(m.handlerMs), ms(outside)];
  });
  return table(head, rows);
}

export function scoreTable(scenario) {
  const head = ['Contender', 'rows/s', 'vs ref.', 'scoring s', 'whole command s', 'peak RSS MiB'];
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, `**${row.status}**: ${row.note}`, '', '', '', ''];
    const m = row.median;
    const vs = scenario.referenceRowsPerS ? `${(m.rowsPerS / scenario.referenceRowsPerS).toFixed(2)}×` : '–';
    return [row.name, int(m.rowsPerS), vs, num(m.scoreS, 2), num(m.wallS, 2), int(m.peakRssMiB)];
  });
  return table(head, rows);
}

export function memoryTable(scenario) {
  const { few, many } = scenario;
  const head = ['Contender', `RSS, ${few} model MiB`, `RSS, ${many} models MiB`, 'per model MiB', `ready with ${many} s`];
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, `**${row.status}**: ${row.note}`, '', '', ''];
    const m = row.median;
    return [row.name, int(m[`rss${few}MiB`]), int(m[`rss${many}MiB`]), num(m.perModelMiB, 2), num(m[`ready${many}S`], 1)];
  });
  return table(head, rows);
}

export function reloadTable(scenario) {
  const head = ['Contender', 'rate req/s', 'v2 answers after s', 'steady p50 ms', 'steady p99 ms', 'switch p50 ms', 'switch p99 ms', 'switch ÷ steady p99', 'switch max ms', 'Errors'];
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, `**${row.status}**: ${row.note}`, '', '', '', '', '', '', '', ''];
    const m = row.median;
    const errors = row.runs.reduce((n, r) => n + r.errors, 0);
    return [row.name, int(m.rate), num(m.switchS, 2), num(m.steadyP50Ms, 2), num(m.steadyP99Ms, 2), num(m.switchP50Ms, 2), num(m.switchP99Ms, 2), `${num(m.p99Ratio, 2)}×`, num(m.switchMaxMs, 1), String(errors)];
  });
  return table(head, rows);
}

export function streamTable(scenario) {
  const head = ['Contender', 'Streams', 'chunks/s', 'vs ref.', 'first chunk p50 ms', 'p99 ms', 'streams/s', 'Errors', 'Peak RSS MiB'];
  const ref = scenario.rows.find((r) => r.contender === scenario.reference && r.status === 'ok');
  const rows = scenario.rows.map((row) => {
    if (row.status !== 'ok') return [row.name, String(row.concurrency), `**${row.status}**: ${row.note}`, '', '', '', '', '', ''];
    const m = row.median;
    const ratio = ref && m.chunksPerS ? `${(m.chunksPerS / ref.median.chunksPerS).toFixed(3)}×` : '–';
    return [
      row.name,
      String(row.concurrency),
      int(m.chunksPerS),
      ratio,
      ms(m.ttfcP50Ms),
      ms(m.ttfcP99Ms),
      num(m.streamsPerS, 1),
      String(m.errors),
      num(m.peakRssMiB, 0),
    ];
  });
  return table(head, rows);
}

export function scenarioMarkdown(id, s) {
  const body =
    s.kind === 'load' ? loadTable(s) : s.kind === 'cold' ? coldTable(s) : s.kind === 'stream' ? streamTable(s) : s.kind === 'open' ? openTable(s) : s.kind === 'lone' ? loneTable(s) : s.kind === 'score' ? scoreTable(s) : s.kind === 'memory' ? memoryTable(s) : s.kind === 'reload' ? reloadTable(s) : soakTable(s);
  const notes = [];
  if (s.kind === 'load' && s.reference) notes.push(`"vs ref." is req/s relative to ${s.referenceName} at the same concurrency.`);
  if (s.kind === 'load' && s.rows.some((r) => r.median?.wrkCpuPct > 90)) {
    notes.push('† the load generator (wrk or h2load) used more than 90% of its core: it, not the server, may be the limit.');
  }
  if (s.kind === 'stream') {
    notes.push('Each client opens one stream after another (closed loop) and reads it to its end over a raw HTTP/1.1 socket (lib/stream.mjs); "vs ref." is chunks/s relative to redesmyn; the first chunk is timed from the request being sent.');
  }
  if (s.kind === 'lone') {
    notes.push(
      'Timed by a Node client (one kept-alive connection, the next request sent when the answer has arrived). Server total, queue and handler are medians of redesmyn\'s Server-Timing header: the handler time includes the hop to the handler\'s thread and back. "Outside the server" is client p50 minus server total: HTTP over loopback and the client itself.',
    );
  }
  if (s.kind === 'open') {
    notes.push(
      `The peak is each contender's own closed-loop req/s at ${s.peakConnections} connections (wrk, same run); vegeta then sends requests at a fixed rate whether or not earlier ones were answered, so queueing shows in the percentiles (no coordinated omission). "sent req/s" below the rate means vegeta, not the server, fell behind.`,
    );
  }
  if (s.kind === 'score') {
    notes.push(
      `rows/s and "scoring s" are each command's own measure of the scoring, after start-up (imports, model load, server start); "whole command" is the wall time of the process; "vs ref." is rows/s relative to ${s.referenceName}. One warm-up run first; each command pinned like a server, with the same one-thread settings for Polars and BLAS.`,
    );
  }
  if (s.kind === 'memory') {
    notes.push(`Each server started on a repository of ${s.few} copy of the iris model, then of ${s.many} (separate model folders, each loaded on its own); RSS of the whole process tree a second after ready. "per model" is the difference over the ${s.many - s.few} extra models. One run: memory does not vary the way throughput does.`);
  }
  if (s.kind === 'reload') {
    notes.push(
      'vegeta sends at half the closed-loop peak (64 connections, same server); a third of the way into the run, version 2 is written beside version 1 and renamed into place, and `--watch` (every 200 ms) loads it, moves the unversioned route to it and unloads version 1. "Steady" is the requests sent from the first second until the drop; "switch" those sent from the drop until 2 s after version 2 first answered. Errors: every non-200 over the whole run.',
    );
  }
  if (s.kind === 'soak') notes.push(`${s.seconds} s at ${s.concurrency} connections; "RSS end" is at the end of the run.`);
  return [`### ${id}. ${s.title}`, '', body, ...(notes.length ? ['', ...notes] : [])].join('\n');
}
