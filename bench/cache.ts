// Model-cache figures for the iris model (Python joblib loader):
//  - time from the first request of a new key to its answer,
//  - time of a request whose model is already cached,
//  - RSS added per cached model.
//
//   npx tsx bench/cache.ts            (after npm run build and node scripts/setup.mjs)
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheConfig, Endpoint, FsClient, Schema, Server, py } from '../src/index';

const root = join(import.meta.dirname, '..');
const variants = Number(process.env.VARIANTS ?? 40);
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-cache-bench-'));
  for (let i = 0; i < variants; i++) {
    mkdirSync(join(dir, 'iris', '1', String(i)), { recursive: true });
    copyFileSync(join(root, 'examples/iris/models/iris/1/1/model.joblib'), join(dir, 'iris', '1', String(i), 'model.joblib'));
  }
  const iris = new Endpoint({
    path: '/iris/{run_id}/{model_id}',
    schema: new Schema({ sepal_length: Schema.f64(), sepal_width: Schema.f64(), petal_length: Schema.f64(), petal_width: Schema.f64() }),
    cache: new CacheConfig({
      client: new FsClient({ basePath: dir, pathTemplate: 'iris/{run_id}/{model_id}/model.joblib' }),
      loadModel: py.loader('joblib:load'),
      maxSize: variants,
    }),
    handler: py.handler('iris_handlers:predict_with'),
  });
  const server = new Server({ port: 0, python: { venv: join(root, '.venv'), path: [join(root, 'examples/iris')] } });
  server.register(iris);
  await server.serve();
  const url = `http://127.0.0.1:${server.port}`;
  const body = JSON.stringify([{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }]);
  const ask = async (model: number) => {
    const t0 = performance.now();
    const res = await fetch(`${url}/iris/1/${model}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await res.text();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return performance.now() - t0;
  };
  await ask(0); // the first load also imports scikit-learn
  await ask(0);
  const before = rssMiB();
  const first: number[] = [];
  const cached: number[] = [];
  for (let m = 1; m < variants; m++) {
    first.push(await ask(m));
    cached.push(await ask(m));
  }
  const after = rssMiB();
  console.log(`variants loaded: ${variants - 1} (after a warm-up load)`);
  console.log(`first request of a new key: median ${median(first).toFixed(2)} ms (min ${Math.min(...first).toFixed(2)}, max ${Math.max(...first).toFixed(2)})`);
  console.log(`request with the model cached: median ${median(cached).toFixed(2)} ms`);
  console.log(`RSS per cached model: ${(((after - before) * 1024) / (variants - 1)).toFixed(0)} KiB (RSS ${before.toFixed(1)} → ${after.toFixed(1)} MiB)`);
  console.log(`stats: ${JSON.stringify(await iris.cache!.stats())}`);
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
