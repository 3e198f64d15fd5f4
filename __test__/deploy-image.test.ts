// The OCI images, built by scripts/image.mjs from what `npm run build` made
// (on a debootstrap base cached outside the clone) and run as KServe runs
// its runtime container: the model folder mounted read-only at /mnt/models,
// a read-only root filesystem with /tmp apart, KServe's arguments and
// MLSERVER_* environment. Clients: curl-free fetch over REST, kserve's
// Python client (REST and gRPC) and tritonclient (gRPC). The podman flags
// below (runc, rlimits) are what these machines need, not what users type.
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages, IMAGES, PODMAN_LIMITS, PODMAN_RUN } from '../scripts/image.mjs';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { ensureClients } from '../scripts/v2-clients.mjs';

const run = promisify(execFile);
const root = join(__dirname, '..');
let dir: string;
let built: { images: Record<string, { name: string; uncompressed: number; compressed: number; buildMs: number }>; parts: Record<string, number> };
let expected: Record<string, any>;
const containers: string[] = [];

function podman(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('podman', args, { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

/** Runs an image as KServe would; resolves once /v2/health/ready answers 200, with the time that took. */
async function runAsKServe(image: string, models: string, args: string[], env: Record<string, string> = {}) {
  const [http, grpc] = [await freePort(), await freePort()];
  const name = `redesmyn-test-${http}`;
  const t0 = Date.now();
  const r = podman([
    'run', ...PODMAN_RUN, '-d', ...PODMAN_LIMITS, '--network', 'host', '--name', name,
    '--read-only', '--tmpfs', '/tmp:rw,size=64m', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '-v', `${models}:/mnt/models:ro`,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    image, 'serve', '--model_dir=/mnt/models', `--http_port=${http}`, `--grpc_port=${grpc}`, ...args,
  ]);
  expect(r.code, r.stderr).toBe(0);
  containers.push(name);
  const url = `http://127.0.0.1:${http}`;
  for (;;) {
    const ok = await fetch(`${url}/v2/health/ready`).then((res) => res.status === 200, () => false);
    if (ok) break;
    const state = podman(['inspect', name, '--format', '{{.State.Status}}']).stdout.trim();
    if (state !== 'running') throw new Error(`${image} stopped (${state}):\n${podman(['logs', name]).stderr}`);
    if (Date.now() - t0 > 120_000) throw new Error(`${image} not ready after 120 s:\n${podman(['logs', name]).stderr}`);
    await new Promise((d) => setTimeout(d, 100));
  }
  return { name, url, grpc: `127.0.0.1:${grpc}`, readyMs: Date.now() - t0 };
}

beforeAll(async () => {
  built = buildImages(['slim', 'python']);
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-image-test-'));
  const { venv } = ensureRuntimesVenv();
  await run(join(venv, 'bin', 'python'), [join(__dirname, 'deploy', 'make_artifacts.py'), join(dir, 'artifacts')], { timeout: 120_000 });
  expected = JSON.parse(readFileSync(join(dir, 'artifacts', 'expected.json'), 'utf8'));
  const figures = { sizes: built.images, parts: built.parts };
  mkdirSync(join(root, '.cache'), { recursive: true });
  writeFileSync(join(root, '.cache', 'image-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`image figures: ${JSON.stringify(figures)}`);
}, 2_400_000);

afterAll(() => {
  for (const name of containers) podman(['rm', '-f', '-t', '0', name]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('redesmyn:slim', () => {
  it('holds node, the addon and onnxruntime and under 8 MB besides, runs as uid 1000 with a HEALTHCHECK on /v2/health/ready, and has no Python and no shell', () => {
    const slim = built.images.slim;
    // Everything but node and redesmyn's native files: glibc, libstdc++, tini, redesmyn's JavaScript.
    const rest = slim.uncompressed - built.parts.node - built.parts.addon - built.parts.bridge - built.parts.onnxruntime;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    console.log(`slim: ${mb(slim.uncompressed)} MB = node ${mb(built.parts.node)} + addon ${mb(built.parts.addon)} + onnxruntime ${mb(built.parts.onnxruntime)} + bridge ${mb(built.parts.bridge)} + ${mb(rest)} MB`);
    expect(rest).toBeGreaterThan(0);
    expect(rest).toBeLessThanOrEqual(8e6);
    const config = JSON.parse(podman(['image', 'inspect', IMAGES.slim, '--format', '{{json .Config}}']).stdout);
    expect(config.User).toBe('1000:1000');
    expect(config.ExposedPorts).toEqual({ '8080/tcp': {}, '8081/tcp': {} });
    expect(config.Entrypoint.slice(0, 2)).toEqual(['/usr/local/bin/tini', '--']);
    const health = JSON.parse(podman(['image', 'inspect', IMAGES.slim, '--format', '{{json .Config.Healthcheck}}']).stdout);
    expect(health.Test.join(' ')).toContain('/app/healthcheck.js');
    expect(readFileSync(join(root, 'deploy', 'image', 'healthcheck.js'), 'utf8')).toContain('/v2/health/ready');
    const probe = podman(['run', ...PODMAN_RUN, '--rm', ...PODMAN_LIMITS, '--entrypoint', '/usr/local/bin/node', IMAGES.slim, '-e',
      "const fs=require('fs');console.log(JSON.stringify({uid:process.getuid(),python:['/usr/bin/python3','/usr/local/bin/python3'].some(fs.existsSync),sh:fs.existsSync('/bin/sh'),apt:fs.existsSync('/usr/bin/apt-get')}))"]);
    expect(probe.code, probe.stderr).toBe(0);
    expect(JSON.parse(probe.stdout)).toEqual({ uid: 1000, python: false, sh: false, apt: false });
  });

  it('serves a TypeScript model mounted read-only at /mnt/models, answers V2 REST and gRPC, and stops on SIGTERM with exit 0', async () => {
    const models = join(dir, 'sum-ts');
    cpSync(join(root, 'examples', 'repository', 'sum-ts'), models, { recursive: true });
    const c = await runAsKServe(IMAGES.slim, models, ['--model_name=adder'], { MLSERVER_MODEL_NAME: 'adder' });
    console.log(`slim cold start to ready: ${c.readyMs} ms`);
    const res = await fetch(`${c.url}/v2/models/adder/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'a', datatype: 'FP64', shape: [2], data: [1, 2.5] }, { name: 'b', datatype: 'FP64', shape: [2], data: [10, 20] }] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual([11, 22.5]);
    const { triton } = ensureClients();
    const grpc = spawnSync(triton, ['-c', `
import json, numpy as np, tritonclient.grpc as g
c = g.InferenceServerClient("${c.grpc}")
xs = []
for n, v in (("a", [1.0, 2.5]), ("b", [10.0, 20.0])):
    x = g.InferInput(n, [2], "FP64"); x.set_data_from_numpy(np.array(v)); xs.append(x)
r = c.infer("adder", xs)
print(json.dumps({"ready": c.is_model_ready("adder"), "out": r.as_numpy(r.get_response().outputs[0].name).tolist()}))
`], { encoding: 'utf8', timeout: 60_000 });
    expect(grpc.status, grpc.stderr).toBe(0);
    expect(JSON.parse(grpc.stdout)).toEqual({ ready: true, out: [11, 22.5] });
    const healthcheck = podman(['healthcheck', 'run', c.name]);
    expect(healthcheck.code, healthcheck.stderr + healthcheck.stdout).toBe(0);
    const t0 = Date.now();
    podman(['stop', '-t', '20', c.name]);
    expect(podman(['inspect', c.name, '--format', '{{.State.ExitCode}}']).stdout.trim()).toBe('0');
    // tini forwarded SIGTERM: the server stopped itself, long before podman's 20 s SIGKILL.
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 180_000);

  it('serves an ONNX model (a scikit-learn model exported by skl2onnx) with no Python inside, as the model\'s own labels', async () => {
    const models = join(dir, 'onnx-export');
    await run(ensureClients().onnx, [join(root, 'bench/peers/train_iris.py'), models], { cwd: root, timeout: 300_000 });
    const onnxExpected = JSON.parse(readFileSync(join(models, 'iris-expected.json'), 'utf8')) as { rows: number[][]; labels: number[] };
    const folder = join(dir, 'iris-onnx');
    mkdirSync(folder);
    cpSync(join(models, 'iris.onnx'), join(folder, 'iris.onnx'));
    writeFileSync(join(folder, 'model-settings.json'), JSON.stringify({ runtime: 'onnx', parameters: { uri: './iris.onnx' }, inputs: [{ name: 'input', datatype: 'FP64', shape: [-1, 4] }] }));
    const c = await runAsKServe(IMAGES.slim, folder, ['--model_name=iris-onnx']);
    const rows = onnxExpected.rows.slice(0, 6);
    const res = await fetch(`${c.url}/v2/models/iris-onnx/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP64', shape: [rows.length, 4], data: rows.flat() }] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
    expect(body.outputs.find((o) => o.name === 'label')?.data).toEqual(onnxExpected.labels.slice(0, 6));
    podman(['stop', '-t', '20', c.name]);
  }, 360_000);
});

describe('redesmyn:python', () => {
  it('serves a bare scikit-learn artifact with KServe arguments; kserve (REST, gRPC) and tritonclient get the library\'s answers', async () => {
    // The arguments are the ClusterServingRuntime's own, as KServe renders them for an InferenceService named iris (ports apart: the host's network is shared here).
    const runtime = readFileSync(join(root, 'deploy', 'kserve', 'cluster-serving-runtime.yaml'), 'utf8');
    const args = [...runtime.slice(runtime.indexOf('      args:\n')).split('\n').slice(1).join('\n').matchAll(/^ {8}- (.+)$/gm)].map((m) => m[1]);
    const rendered = args.slice(0, args.indexOf('--grpc_port=8081') + 1).map((a) => a.replace('{{.Name}}', 'iris'));
    expect(rendered).toEqual(['serve', '--model_name=iris', '--model_dir=/mnt/models', '--http_port=8080', '--grpc_port=8081']);
    const c = await runAsKServe(IMAGES.python, join(dir, 'artifacts', 'sklearn'), [...rendered.filter((a) => !/^(serve|--model_dir=|--http_port=|--grpc_port=)/.test(a)), '--model_format=sklearn']);
    console.log(`python cold start to ready: ${c.readyMs} ms; sizes ${JSON.stringify(built.images)}`);
    const { kserve, triton } = ensureClients();
    const k = spawnSync(kserve, [join(__dirname, 'v2-clients', 'kserve_client.py'), c.url, c.grpc, 'iris'], { encoding: 'utf8', timeout: 60_000 });
    expect(k.status, k.stderr).toBe(0);
    const results = JSON.parse(k.stdout);
    expect(results.rest_ready).toBe(true);
    expect(results.rest_model_ready).toBe(true);
    expect(results.rest_infer.output).toEqual(expected.sklearn_kserve_client);
    expect(results.grpc_infer.output).toEqual(expected.sklearn_kserve_client);
    const t = spawnSync(triton, [join(__dirname, 'repository', 'grpc_infer.py'), c.grpc, 'iris', 'input-0', 'FP64', JSON.stringify(expected.rows)], { encoding: 'utf8', timeout: 60_000 });
    expect(t.status, t.stderr).toBe(0);
    const out = JSON.parse(t.stdout) as { ready: boolean; outputs: Record<string, number[]> };
    expect(out.ready).toBe(true);
    expect(Object.values(out.outputs)[0]).toEqual(expected.sklearn);
    podman(['stop', '-t', '20', c.name]);
    expect(podman(['inspect', c.name, '--format', '{{.State.ExitCode}}']).stdout.trim()).toBe('0');
  }, 240_000);

  it('a folder with nothing servable, or that it cannot read, stops the container with the reason, not a crash loop without one', async () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    const args = (folder: string) => ['run', ...PODMAN_RUN, '--rm', ...PODMAN_LIMITS, '--network', 'host', '-v', `${folder}:/mnt/models:ro`, IMAGES.python, 'serve', '--model_dir=/mnt/models', '--http_port=0'];
    // mkdtemp makes the folder 0700 and root's: uid 1000 cannot read it.
    const unreadable = podman(args(empty));
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toMatch(/model folder '\/mnt\/models' cannot be read by this process \(uid 1000\)/);
    spawnSync('chmod', ['755', empty]);
    const r = podman(args(empty));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model folder '\/mnt\/models' is empty: nothing to serve/);
  }, 60_000);
});
