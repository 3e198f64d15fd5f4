#!/usr/bin/env node
// Fuzzes the core's decoders and encoders with cargo-fuzz (libFuzzer) for a
// bounded time per target: `crates/redesmyn/fuzz/fuzz_targets/*.rs`.
//
//   node scripts/fuzz.mjs                   every target, 8 s each (what `npm test` runs)
//   node scripts/fuzz.mjs --seconds 600     longer runs, as docs/fuzzing.md describes
//   node scripts/fuzz.mjs --build           build only (the prefetch of `npm test`)
//   node scripts/fuzz.mjs records_json ...  named targets only
//   node scripts/fuzz.mjs --ci              a fixed seed (1) and a fresh corpus from the
//                                           committed seeds only, so a run repeats its
//                                           predecessor's path (what `npm test` uses)
//
// cargo-fuzz is installed from crates.io at a pinned version under
// $HOME/.cache/redesmyn-tools; targets build (release, AddressSanitizer)
// into $HOME/.cache/redesmyn-fuzz-target, outside the clone. The nightly
// toolchain is used when rustup has one; else stable with RUSTC_BOOTSTRAP=1
// (the sanitizer flag is unstable). Each target starts from its committed
// seeds (crates/redesmyn/fuzz/seeds/TARGET) and from the corpus earlier runs
// grew on this machine ($HOME/.cache/redesmyn-fuzz/corpus/TARGET); a crash
// leaves its input in $HOME/.cache/redesmyn-fuzz/artifacts/TARGET and fails
// the run. Prints one line per target: `fuzz TARGET: ok (N runs in S s)` or
// `fuzz TARGET: FAILED ...`, and exits non-zero if any failed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cargoEnv } from './cargo-env.mjs';

const CARGO_FUZZ_VERSION = '0.13.2';
const root = join(import.meta.dirname, '..');
const crate = join(root, 'crates', 'redesmyn');
const fuzzDir = join(crate, 'fuzz');
const tools = process.env.REDESMYN_TOOLS_DIR ?? join(homedir(), '.cache', 'redesmyn-tools');
const cache = join(homedir(), '.cache', 'redesmyn-fuzz');

const args = process.argv.slice(2);
const secondsAt = args.indexOf('--seconds');
const seconds = secondsAt >= 0 ? Number(args[secondsAt + 1]) : 8;
const buildOnly = args.includes('--build');
const ci = args.includes('--ci');
const named = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--seconds');
const all = readdirSync(join(fuzzDir, 'fuzz_targets'))
  .filter((f) => f.endsWith('.rs'))
  .map((f) => f.slice(0, -3))
  .sort();
const targets = named.length ? named : all;
for (const t of targets) {
  if (!all.includes(t)) {
    console.error(`fuzz: no target '${t}' (targets: ${all.join(', ')})`);
    process.exit(2);
  }
}

const env = cargoEnv();
env.CARGO_TARGET_DIR = join(homedir(), '.cache', 'redesmyn-fuzz-target');
const nightly = spawnSync('rustup', ['run', 'nightly', 'rustc', '--version'], { encoding: 'utf8' }).status === 0;
if (!nightly) env.RUSTC_BOOTSTRAP = '1';
const toolchain = nightly ? ['+nightly'] : [];

function cargoFuzz() {
  const dir = join(tools, `cargo-fuzz-${CARGO_FUZZ_VERSION}`);
  const bin = join(dir, 'bin', 'cargo-fuzz');
  if (!existsSync(bin)) {
    console.log(`fuzz: installing cargo-fuzz ${CARGO_FUZZ_VERSION} into ${dir}`);
    const installed = spawnSync(
      'cargo',
      ['install', 'cargo-fuzz', '--version', CARGO_FUZZ_VERSION, '--locked', '--root', dir],
      { stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: join(tools, 'cargo-fuzz-build') } },
    );
    if (installed.status !== 0) {
      console.error('fuzz: could not install cargo-fuzz');
      process.exit(1);
    }
  }
  return bin;
}

const bin = cargoFuzz();
const fuzz = (sub, extra, options = {}) =>
  spawnSync('cargo', [...toolchain, 'fuzz', sub, '--fuzz-dir', fuzzDir, '-O', ...extra], {
    cwd: crate,
    env: { ...env, PATH: `${join(bin, '..')}:${env.PATH}` },
    encoding: 'utf8',
    ...options,
  });

const started = Date.now();
const built = fuzz('build', [], { stdio: 'inherit' });
if (built.status !== 0) {
  console.error('fuzz: the targets did not build');
  for (const t of targets) console.log(`fuzz ${t}: FAILED (build)`);
  process.exit(1);
}
console.log(`fuzz: targets built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (buildOnly) process.exit(0);

let failed = 0;
for (const t of targets) {
  const corpus = ci ? mkdtempSync(join(tmpdir(), `redesmyn-fuzz-${t}-`)) : join(cache, 'corpus', t);
  const artifacts = join(cache, 'artifacts', t);
  mkdirSync(corpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const seeds = join(fuzzDir, 'seeds', t);
  const dirs = [corpus, ...(existsSync(seeds) ? [seeds] : [])];
  const run = fuzz('run', [
    t,
    ...dirs,
    '--',
    `-max_total_time=${seconds}`,
    `-artifact_prefix=${artifacts}/`,
    '-rss_limit_mb=4096',
    '-max_len=4096',
    '-print_final_stats=1',
    ...(ci ? ['-seed=1'] : []),
  ]);
  if (ci) rmSync(corpus, { recursive: true, force: true });
  const out = `${run.stdout}\n${run.stderr}`;
  const runs = out.match(/stat::number_of_executed_units:\s*(\d+)/)?.[1] ?? '?';
  const took = out.match(/Done (\d+) runs in (\d+) second/);
  if (run.status === 0) {
    console.log(`fuzz ${t}: ok (${runs} runs in ${took?.[2] ?? seconds} s)`);
  } else {
    failed += 1;
    const crash = out.match(/Test unit written to (\S+)/)?.[1];
    const lines = out.split('\n');
    const panic = lines.findIndex((l) => /panicked at|ERROR: (AddressSanitizer|libFuzzer)/.test(l));
    console.log(`fuzz ${t}: FAILED${crash ? ` (input: ${crash})` : ''}`);
    console.log(lines.slice(Math.max(panic, 0), Math.max(panic, 0) + 12).join('\n'));
  }
}
process.exit(failed ? 1 : 0);
