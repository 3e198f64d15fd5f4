// Builds what the benchmark runs: the actix echo, redesmyn (release: a private
// copy of the package under bench/.build/pkg; debug: the root's own build) and
// the redesmyn contenders' TypeScript.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cargoEnv } from '../../scripts/cargo-env.mjs';
import { BENCH, BENCH_TARGET, BUILD, ROOT } from './config.mjs';

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
  const status = sh('actix-echo', 'cargo', args, { env: { ...process.env, CARGO_TARGET_DIR: BENCH_TARGET } });
  if (status !== 0) throw new Error(`building the actix echo failed (exit ${status})`);
  return join(BENCH_TARGET, release ? 'release' : 'debug', 'actix-echo');
}

const bin = (name) => join(ROOT, 'node_modules', '.bin', name);

/**
 * The source tree to build redesmyn from: the working tree, or (with `rev`)
 * a clean export of that commit in bench/.build/src, so a benchmark can
 * measure a commit while the working tree is mid-edit.
 */
function sourceTree(rev) {
  if (!rev) return ROOT;
  const src = join(BUILD, 'src');
  const sha = spawnSync('git', ['rev-parse', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim();
  if (!sha) throw new Error(`git knows no commit ${rev}`);
  const stamp = join(src, '.bench-rev');
  // Unchanged files keep their mtimes, so Cargo does not rebuild them.
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sha) return src;
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  const archive = spawnSync('sh', ['-c', `git -C "${ROOT}" archive --format=tar "$0" | tar -x -C "${src}"`, sha], { stdio: 'inherit' });
  if (archive.status !== 0) throw new Error(`could not export ${rev} from git`);
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');
  writeFileSync(stamp, `${sha}\n`);
  return src;
}

/** The commit `rev` names, short. */
export function revision(rev) {
  const r = spawnSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * Makes `redesmyn` importable for the contenders of `mode` and returns the
 * directory of that package.
 *  - 'release': builds the addon with --release and the TypeScript layer into
 *    bench/.build/pkg, leaving the root's own (debug) build untouched; from
 *    the working tree, or from commit `rev` when given.
 *  - 'debug': the root package as the developer built it (`npm run build`;
 *    built here only when missing).
 */
export function buildRedesmyn(mode, { rev = null } = {}) {
  if (!existsSync(bin('napi')) || !existsSync(bin('tsc'))) {
    throw new Error('the root has no node_modules: run `npm install` at the repository root first (`npm ci` refuses: the lock file cannot list the unpublished per-platform packages)');
  }
  if (mode === 'debug') {
    if (!existsSync(join(ROOT, 'dist', 'index.js')) || !existsSync(join(ROOT, 'binding.js'))) {
      const status = sh('npm run build', 'npm', ['run', 'build', '--silent'], { cwd: ROOT });
      if (status !== 0) throw new Error(`\`npm run build\` at the root failed (exit ${status})`);
    }
    return ROOT;
  }
  const src = sourceTree(rev);
  const pkg = join(BUILD, 'pkg');
  rmSync(pkg, { recursive: true, force: true });
  mkdirSync(pkg, { recursive: true });
  const env = cargoEnv({ ...process.env, CARGO_TARGET_DIR: BENCH_TARGET });
  const napi = sh(
    'napi build',
    bin('napi'),
    [
      'build', '--platform', '--release',
      '--manifest-path', 'crates/redesmyn-node/Cargo.toml',
      '--target-dir', BENCH_TARGET,
      '--output-dir', relative(src, pkg),
      '--js', 'binding.js', '--dts', 'binding.d.ts',
    ],
    { cwd: src, env },
  );
  if (napi !== 0) throw new Error(`the release build of the addon failed (exit ${napi})`);
  // The Python bridge library, beside the addon where it looks for it (trees
  // from before the bridge existed embed libpython in the addon instead).
  if (existsSync(join(src, 'crates', 'redesmyn-python-bridge'))) {
    const bridge = sh('cargo build (Python bridge)', 'cargo', ['build', '--release', '-p', 'redesmyn-python-bridge', '--target-dir', BENCH_TARGET], { cwd: src, env });
    if (bridge !== 0) throw new Error(`the release build of the Python bridge failed (exit ${bridge})`);
    const file = process.platform === 'darwin' ? 'libredesmyn_python_bridge.dylib' : 'libredesmyn_python_bridge.so';
    cpSync(join(BENCH_TARGET, 'release', file), join(pkg, file));
  }
  if (rev) cpSync(join(pkg, 'binding.d.ts'), join(src, 'binding.d.ts')); // for tsc's type check of src/
  const tsc = sh('tsc', bin('tsc'), ['-p', 'tsconfig.json', '--outDir', join(pkg, 'dist')], { cwd: src });
  if (!existsSync(join(pkg, 'dist', 'index.js'))) throw new Error(`compiling the TypeScript layer failed (exit ${tsc})`);
  if (tsc !== 0) console.warn('warning: tsc reported type errors in the root TypeScript layer (output emitted anyway)');
  cpSync(join(src, 'package.json'), join(pkg, 'package.json'));
  writeFileSync(join(pkg, 'index.d.ts'), readFileSync(join(src, 'index.d.ts')));
  // The built-in Python runtimes and the worker process, as the npm package ships them.
  if (existsSync(join(src, 'python', 'redesmyn_runtimes'))) {
    cpSync(join(src, 'python', 'redesmyn_runtimes'), join(pkg, 'python', 'redesmyn_runtimes'), {
      recursive: true,
      filter: (f) => !f.includes('__pycache__'),
    });
  }
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
