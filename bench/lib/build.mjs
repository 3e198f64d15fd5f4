// Builds what the benchmark runs: the actix echo, redesmyn (release: a private
// copy of the package under bench/.build/pkg; debug: the root's own build) and
// the redesmyn contenders' TypeScript.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BENCH, BUILD, ECHO_TARGET, ROOT, ROOT_TARGET } from './config.mjs';

function sh(what, cmd, args, opts = {}) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  return r.status;
}

/** Builds bench/actix-echo; returns the binary's path. */
export function buildEcho({ release = true } = {}) {
  const manifest = join(BENCH, 'actix-echo', 'Cargo.toml');
  const args = ['build', '--quiet', '--manifest-path', manifest, ...(release ? ['--release'] : [])];
  const status = sh('actix-echo', 'cargo', args, { env: { ...process.env, CARGO_TARGET_DIR: ECHO_TARGET } });
  if (status !== 0) throw new Error(`building the actix echo failed (exit ${status})`);
  return join(ECHO_TARGET, release ? 'release' : 'debug', 'actix-echo');
}

const bin = (name) => join(ROOT, 'node_modules', '.bin', name);

/**
 * Makes `redesmyn` importable for the contenders of `mode` and returns the
 * directory of that package.
 *  - 'release': builds the addon with --release and the TypeScript layer into
 *    bench/.build/pkg, leaving the root's own (debug) build untouched.
 *  - 'debug': the root package as the developer built it (`npm run build`;
 *    built here only when missing).
 */
export function buildRedesmyn(mode) {
  if (!existsSync(bin('napi')) || !existsSync(bin('tsc'))) {
    throw new Error('the root has no node_modules: run `npm ci` at the repository root first');
  }
  if (mode === 'debug') {
    if (!existsSync(join(ROOT, 'dist', 'index.js')) || !existsSync(join(ROOT, 'binding.js'))) {
      const status = sh('npm run build', 'npm', ['run', 'build', '--silent'], { cwd: ROOT });
      if (status !== 0) throw new Error(`\`npm run build\` at the root failed (exit ${status})`);
    }
    return ROOT;
  }
  const pkg = join(BUILD, 'pkg');
  mkdirSync(pkg, { recursive: true });
  const env = { ...process.env, CARGO_TARGET_DIR: ROOT_TARGET };
  const napi = sh(
    'napi build',
    bin('napi'),
    [
      'build', '--platform', '--release',
      '--manifest-path', 'crates/redesmyn-node/Cargo.toml',
      '--target-dir', ROOT_TARGET,
      '--output-dir', relative(ROOT, pkg),
      '--js', 'binding.js', '--dts', 'binding.d.ts',
    ],
    { cwd: ROOT, env },
  );
  if (napi !== 0) throw new Error(`the release build of the addon failed (exit ${napi})`);
  rmSync(join(pkg, 'dist'), { recursive: true, force: true });
  const tsc = sh('tsc', bin('tsc'), ['-p', 'tsconfig.json', '--outDir', join(pkg, 'dist')], { cwd: ROOT });
  if (!existsSync(join(pkg, 'dist', 'index.js'))) throw new Error(`compiling the TypeScript layer failed (exit ${tsc})`);
  if (tsc !== 0) console.warn('warning: tsc reported type errors in the root TypeScript layer (output emitted anyway)');
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  writeFileSync(join(pkg, 'index.d.ts'), readFileSync(join(ROOT, 'index.d.ts')));
  return pkg;
}

/**
 * Compiles bench/servers/*.ts to CommonJS in bench/.build/<mode>/servers,
 * importing `redesmyn` from `pkgDir` (`only`: a list of file names to limit
 * it to). Returns that folder. Type errors are
 * printed, not fatal: the contenders that still run are measured.
 */
export function compileServers(mode, pkgDir, only = null) {
  const out = join(BUILD, mode);
  const modules = join(out, 'node_modules');
  mkdirSync(modules, { recursive: true });
  const link = join(modules, 'redesmyn');
  rmSync(link, { force: true, recursive: false });
  symlinkSync(pkgDir, link, 'dir');
  writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');
  const sources = join(BENCH, 'servers');
  const files = readdirSync(sources)
    .filter((f) => f.endsWith('.ts') && (!only || only.includes(f)))
    .map((f) => join(sources, f));
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'commonjs',
      moduleResolution: 'node',
      lib: ['ES2022'],
      types: ['node'],
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmitOnError: false,
      rootDir: sources,
      outDir: join(out, 'servers'),
      baseUrl: out,
      paths: { redesmyn: [link] },
    },
    files,
  };
  writeFileSync(join(out, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
  const status = sh('tsc', bin('tsc'), ['-p', join(out, 'tsconfig.json')], { cwd: BENCH });
  const emitted = files.every((f) => existsSync(join(out, 'servers', f.slice(sources.length + 1).replace(/\.ts$/, '.js'))));
  if (!emitted) throw new Error(`compiling bench/servers failed (tsc exit ${status})`);
  if (status !== 0) console.warn('warning: bench/servers has type errors against this build of redesmyn (compiled anyway)');
  return join(out, 'servers');
}
