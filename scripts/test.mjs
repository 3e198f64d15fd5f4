#!/usr/bin/env node
// `npm test`: every test of the project, then one summary line
// `N passed, N failed`. Runs the core's cargo tests, builds the addon and the
// TypeScript layer, then the end-to-end vitest suites over real HTTP.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cargoEnv } from './cargo-env.mjs';

const root = join(import.meta.dirname, '..');
const env = cargoEnv();

// Environments the suites need that mostly wait on the network (pip
// downloads): made in the background while Rust compiles, awaited before the
// suites. Each script is idempotent; a suite that finds one broken runs it
// again and reports the failure itself.
const prefetchLog = join(root, '.cache', 'prefetch.log');
mkdirSync(join(root, '.cache'), { recursive: true });
// mlserver-venv makes MLServer's own environment for the compatibility
// suite; deploy-tools builds helm and the manifest checker from the Go
// module proxy; `image.mjs --base` installs podman and makes the
// debootstrap base image; gcs-server builds fake-gcs-server from the Go module
// proxy and azure-server installs Azurite from npm, the emulators of
// __test__/stores.test.ts (all cached outside the clone).
const prefetches = [
  'scripts/gcs-server.mjs install',
  'scripts/azure-server.mjs install',
  'scripts/pythons.mjs',
  'scripts/v2-clients.mjs',
  'scripts/go-tools.mjs',
  'scripts/jaeger.mjs',
  'scripts/runtimes-venv.mjs',
  'scripts/mlserver-venv.mjs',
  'scripts/deploy-tools.mjs',
  'scripts/image.mjs --base',
  'scripts/fuzz.mjs --build',
]
  .filter((script) => existsSync(join(root, script.split(' ')[0])))
  .map((script) => {
    const child = spawn('node', script.split(' '), { cwd: root, env, stdio: ['ignore', openSync(prefetchLog, 'a'), openSync(prefetchLog, 'a')] });
    return new Promise((done) => child.on('close', (code) => done({ script, code })));
  });

let passed = 0;
let failed = 0;

function run(cmd, args, { capture = false } = {}) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  const result = spawnSync(cmd, args, { cwd: root, env, stdio: capture ? ['inherit', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8' });
  if (capture) {
    process.stdout.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
  }
  return result;
}

function step(name, cmd, args) {
  const result = run(cmd, args);
  if (result.status !== 0) {
    console.error(`\n${name} failed (exit ${result.status})`);
    failed += 1;
    return false;
  }
  return true;
}

// 1. Rust: the core and the bindings' unit tests. Built for the host's
// explicit target triple, as napi builds the addon, so both builds share one
// target folder and Polars compiles once.
const host = spawnSync('rustc', ['-vV'], { env, encoding: 'utf8' }).stdout?.match(/^host: (\S+)$/m)?.[1];
const cargo = run('cargo', ['test', '--workspace', ...(host ? ['--target', host] : [])], { capture: true });
for (const m of `${cargo.stdout}\n${cargo.stderr}`.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
  passed += Number(m[1]);
  failed += Number(m[2]);
}
if (cargo.status !== 0 && !/test result: FAILED/.test(`${cargo.stdout}${cargo.stderr}`)) failed += 1;

// The engine example runs to completion from Rust alone (the serving
// example waits for Ctrl-C; tests/rust_server.rs covers it).
const example = run('cargo', ['run', '-q', '-p', 'redesmyn', ...(host ? ['--target', host] : []), '--example', 'schedule'], { capture: true });
if (example.status === 0 && /state: Idle/.test(example.stdout)) passed += 1;
else {
  console.error('\nthe schedule example failed');
  failed += 1;
}

// 2. Build the addon and the TypeScript layer, then the end-to-end suites.
const built =
  step('setup', 'node', ['scripts/setup.mjs']) &&
  step('S3 test server', 'node', ['scripts/s3-server.mjs', 'install']) &&
  step('build', 'npm', ['run', 'build', '--silent']);
for (const { script, code } of await Promise.all(prefetches)) {
  if (code !== 0) console.error(`\n${script} failed in the background (exit ${code}); see ${prefetchLog}`);
}
if (built) {
  const out = join(root, '.cache', 'vitest.json');
  mkdirSync(join(root, '.cache'), { recursive: true });
  rmSync(out, { force: true });
  run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`]);
  try {
    const report = JSON.parse(readFileSync(out, 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests;
    // A suite that fails to load counts as a failure of its own.
    failed += report.testResults.filter((r) => r.status === 'failed' && r.assertionResults.length === 0).length;
  } catch (e) {
    console.error(`could not read the vitest report: ${e.message}`);
    failed += 1;
  }
}

// Fuzzing: each target of crates/redesmyn/fuzz for a short budget (built in
// the background above; a target that finds a crash fails).
const fuzz = run('node', ['scripts/fuzz.mjs', '--ci', '--seconds', process.env.REDESMYN_FUZZ_SECONDS ?? '8'], { capture: true });
for (const line of `${fuzz.stdout}`.split('\n')) {
  if (/^fuzz \S+: ok/.test(line)) passed += 1;
  else if (/^fuzz \S+: FAILED/.test(line)) failed += 1;
}
if (fuzz.status !== 0 && !/^fuzz \S+: FAILED/m.test(fuzz.stdout ?? '')) failed += 1;

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
