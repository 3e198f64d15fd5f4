// What a batch costs to cross to a Python worker process and back: the same
// near-empty handler in-process and in one worker, called one batch at a
// time through endpoint.predict() (no HTTP), for several batch sizes. The
// difference of the median handler times is the worker's per-batch cost
// (Arrow IPC encode into shared memory, control line, Python read, result
// write and read back, thread and process wake-ups).
//
//   npx tsx bench/worker-transfer.ts            # .venv of the repository
//   VENV=/path/to/venv npx tsx bench/worker-transfer.ts
import { join } from 'node:path';
import { Endpoint, Schema, Server, py } from '../src';

const here = import.meta.dirname;
const root = join(here, '..');
const CALLS = Number(process.env.CALLS ?? 400);
const SIZES = [1, 64, 1024, 16384];

const schema = new Schema({ f0: Schema.f64(), f1: Schema.f64(), f2: Schema.f64(), f3: Schema.f64() });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const server = new Server({
    host: '127.0.0.1',
    port: 0,
    python: { venv: process.env.VENV ?? join(root, '.venv'), path: [join(here, 'servers')] },
  });
  const big = { maxSize: Math.max(...SIZES) };
  const inProcess = new Endpoint({ path: '/in-process', schema, batch: big, handler: py.handler('transfer_handler:first') });
  const worker = new Endpoint({ path: '/worker', schema, batch: big, handler: py.handler('transfer_handler:first', { workers: 1 }) });
  server.register(inProcess).register(worker);
  await server.serve();
  console.log('| rows per batch | in-process handler (median ms) | worker handler (median ms) | cost per batch (ms) |');
  console.log('| ---: | ---: | ---: | ---: |');
  for (const rows of SIZES) {
    const records = Array.from({ length: rows }, (_, i) => ({ f0: i, f1: i / 2, f2: i / 3, f3: i / 4 }));
    const times = async (endpoint: typeof worker) => {
      const out: number[] = [];
      for (let i = 0; i < CALLS; i++) {
        const p = await endpoint.predict(records);
        if (i >= CALLS / 10) out.push(p.handlerMs);
      }
      return median(out);
    };
    const a = await times(inProcess);
    const b = await times(worker);
    console.log(`| ${rows} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(b - a).toFixed(3)} |`);
  }
  await server.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
