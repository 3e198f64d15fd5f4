#!/usr/bin/env node
// The offline install a user does, from the tarballs a release would publish.
//
//   node scripts/pack-install.mjs [--release] [--only ts|python] [--json FILE] [--keep]
//
// 1. The addon: by default the one `npm run build` already produced (our code
//    in the dev profile over optimised dependencies), so `npm test` and CI
//    spend no second build on it. With --release it first runs
//    `npm run build:native:release`: the binary a release ships, and the
//    sizes worth quoting.
// 2. `npm run build:ts`, then the host's `.node` (and the Python bridge
//    library, when the build produced one) go into npm/<platform>/, as
//    `napi artifacts` does in the release workflow; `npm pack` packs that
//    platform package and the root package.
// 3. In an empty temporary project, `npm install --offline` of both tarballs
//    with `cargo` and `rustc` absent from PATH (checked). Nothing is fetched:
//    the root's other optional dependencies (other platforms) are skipped.
// 4. The README's quick start, written there as quickstart.ts importing
//    'redesmyn', compiled with `tsc --strict` against the installed types (the
//    compiler is this repository's pinned typescript and @types/node, so the
//    install stays offline and times redesmyn alone), run with node, asked
//    for a prediction over HTTP, then stopped with SIGINT. Inside the process
//    a probe lists the shared libraries mapped (/proc/self/maps on Linux):
//    the addon must come from node_modules/redesmyn-<platform>, and no
//    libpython may be mapped.
// 5. With Python: a quick start with a py.handler over the repository's
//    .venv (scripts/setup.mjs makes it). It needs the Python bridge library in
//    the platform package; without one in the build output this check fails
//    saying so. The bridge must be the one from node_modules/redesmyn-<platform>.
// 6. Only the root tarball installed (no platform package): requiring
//    'redesmyn' must fail naming the missing package.
//
// Prints packed, unpacked and installed sizes, install time and cold start;
// --json FILE writes every result for the test suite (__test__/package.test.ts).
// Exit status 1 when any check failed.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { bridgeFileName, platformPackages, readRoot, root } from './npm-dirs.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = option('--only');
const jsonOut = option('--json');

const results = { release: flag('--release'), checks: {}, sizes: {}, timings: {} };
let failed = false;

function log(message) {
  console.log(`pack-install: ${message}`);
}

/** Records one named check; a failed one makes the script exit 1. */
function record(name, ok, detail = {}) {
  results.checks[name] = { ok, ...detail };
  if (!ok) failed = true;
  log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail.error ? `: ${detail.error}` : ''}`);
}

function finish() {
  if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(results, null, 2)}\n`);
  process.exit(failed ? 1 : 0);
}

/** Runs a command to completion; throws with its output when it fails. */
function run(cmd, cmdArgs, options = {}) {
  const r = spawnSync(cmd, cmdArgs, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`'${cmd} ${cmdArgs.join(' ')}' exited ${r.status}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r;
}

/** The napi-rs name of this machine's platform (linux-x64-gnu, darwin-arm64, ...). */
function hostSuffix() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const glibc = process.report.getReport().header.glibcVersionRuntime;
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

/** PATH without the directories that hold cargo or rustc, and no cargo/rustup variables. */
function envWithoutRust() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(CARGO|RUSTUP|RUSTC|PYO3_)/.test(key)) delete env[key];
  }
  // What the installed package must find by itself.
  delete env.REDESMYN_PYTHON_BRIDGE;
  delete env.VIRTUAL_ENV;
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  const kept = dirs.filter((d) => !['cargo', 'rustc'].some((tool) => existsSync(join(d, tool))));
  env.PATH = kept.join(delimiter);
  return { env, dropped: dirs.filter((d) => !kept.includes(d)) };
}

/** Disk usage of a directory in bytes (`du -sk`, as a user would measure it). */
function du(path) {
  const r = spawnSync('du', ['-sk', path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s+/)[0]) * 1024 : null;
}

const mb = (bytes) => (bytes == null ? '?' : bytes < 1e6 ? `${(bytes / 1e3).toFixed(0)} kB` : `${(bytes / 1e6).toFixed(1)} MB`);

/** The README's quick start: the first ts block of its "## Quick start" section. */
function readmeQuickStart() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## Quick start\s*$/m)[1];
  const block = section?.match(/```ts\n([\s\S]*?)```/)?.[1];
  if (!block) throw new Error('README.md has no ```ts block under "## Quick start"');
  // An ephemeral port, so the check never collides with a running server;
  // the quick start prints the bound port.
  if (!/port: 8080/.test(block)) throw new Error("README quick start no longer has 'port: 8080'; update scripts/pack-install.mjs");
  return block.replace(/port: 8080/, 'port: 0');
}

/** Appended to each quick start: on SIGUSR2, print the shared libraries mapped, from inside the process. */
const PROBE = `
// Added by scripts/pack-install.mjs: list the shared libraries this process has mapped.
process.on('SIGUSR2', () => {
  let source = '/proc/self/maps';
  let libraries: string[];
  try {
    const maps: string = require('node:fs').readFileSync('/proc/self/maps', 'utf8');
    libraries = [...new Set(maps.split('\\n').map((line) => line.split(/\\s+/)[5]).filter((p): p is string => !!p && p.startsWith('/')))];
  } catch {
    source = 'process.report';
    const report = process.report.getReport() as unknown as { sharedObjects: string[] };
    libraries = report.sharedObjects;
  }
  console.log('redesmyn-maps ' + JSON.stringify({ source, libraries }));
});
`;

const PYTHON_QUICKSTART = (venv) => `import { Endpoint, Schema, Server, py } from 'redesmyn';

const Pair = new Schema({ a: Schema.f64(), b: Schema.f64() });

const server = new Server({ host: '127.0.0.1', port: 0, python: { venv: ${JSON.stringify(venv)}, path: ['.'] } });
server.register(new Endpoint({ path: '/predictions/total', schema: Pair, handler: py.handler('pairs:total') }));
server.serve().then(() => console.log(\`listening on \${server.port}\`));
process.once('SIGINT', () => void server.stop());
`;

const PYTHON_HANDLER = `import polars as pl


def total(df: pl.DataFrame) -> pl.Series:
    return df["a"] + df["b"]
`;

/**
 * Runs a compiled quick start: waits for "listening on <port>", posts
 * `records`, asks the probe for the mapped libraries, stops it with SIGINT.
 */
async function runQuickStart({ cwd, script, env, path, records }) {
  const started = performance.now();
  const child = spawn(process.execPath, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const waitFor = (pattern, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${ms} ms; stdout: ${stdout} stderr: ${stderr}`)), ms);
      const check = () => {
        const m = stdout.match(pattern);
        if (m) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          resolve(m);
        }
      };
      const onData = (d) => {
        stdout += d;
        check();
      };
      child.stdout.on('data', onData);
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before ${pattern}; stderr: ${stderr.trim()}`));
      });
      check();
    });
  try {
    const port = Number((await waitFor(/listening on \D*(\d+)/, 30_000))[1]);
    const listeningMs = performance.now() - started;
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(records),
    });
    const body = await res.json();
    const firstAnswerMs = performance.now() - started;
    child.kill('SIGUSR2');
    const maps = JSON.parse((await waitFor(/redesmyn-maps (.*)\n/, 10_000))[1]);
    child.kill('SIGINT');
    const exit = await Promise.race([exited, new Promise((r) => setTimeout(() => r({ code: 'timeout' }), 10_000))]);
    if (exit.code === 'timeout') child.kill('SIGKILL');
    return { status: res.status, body, listeningMs, firstAnswerMs, maps, exit, stderr };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

async function main() {
  const pkg = readRoot();
  const suffix = hostSuffix();
  const platform = platformPackages(pkg).find((p) => p.suffix === suffix);
  if (!platform) {
    record('host is a release target', false, { error: `${suffix} is not among package.json's napi.targets` });
    return finish();
  }
  results.platformPackage = platform.manifest.name;

  // 1-2. Build output into the platform package; pack both.
  if (results.release) {
    log('release build (npm run build:native:release)');
    run('npm', ['run', 'build:native:release', '--silent'], { cwd: root, stdio: 'inherit' });
  }
  run('npm', ['run', 'build:ts', '--silent'], { cwd: root });
  const built = join(root, platform.binary);
  if (!existsSync(built) || !existsSync(join(root, 'binding.js'))) {
    record('addon built', false, { error: `${platform.binary} or binding.js missing in ${root}: run \`npm run build\` first (or pass --release)` });
    return finish();
  }
  copyFileSync(built, join(platform.dir, platform.binary));
  const bridgeBuilt = join(root, platform.bridge);
  const bridgePacked = join(platform.dir, platform.bridge);
  results.bridgeInBuild = existsSync(bridgeBuilt);
  if (results.bridgeInBuild) copyFileSync(bridgeBuilt, bridgePacked);
  else rmSync(bridgePacked, { force: true }); // never ship a stale bridge
  log(`${platform.binary} ${results.bridgeInBuild ? `and ${platform.bridge} ` : ''}copied into npm/${suffix}/ (addon ${mb(statSync(built).size)}, built ${statSync(built).mtime.toISOString()})`);

  const work = mkdtempSync(join(tmpdir(), 'redesmyn-pack-'));
  results.workDir = work;
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const pack = (cwd) => JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd }).stdout)[0];
  const rootPack = pack(root);
  const platformPack = pack(platform.dir);
  for (const [name, p] of [['root', rootPack], ['platform', platformPack]]) {
    results.sizes[name] = { tarball: p.filename, packed: p.size, unpacked: p.unpackedSize, files: p.files.map((f) => f.path) };
  }
  const rootFiles = results.sizes.root.files;
  const strays = rootFiles.filter((f) => /\.(node|so|dylib|dll)$/.test(f));
  const needed = ['binding.js', 'binding.d.ts', 'index.d.ts', 'dist/index.js', 'dist/index.d.ts', 'package.json'];
  const missing = needed.filter((f) => !rootFiles.includes(f));
  record('root tarball ships the loader and types but no binary', strays.length === 0 && missing.length === 0, {
    ...(strays.length || missing.length ? { error: `native files: [${strays}], missing: [${missing}]` } : {}),
  });
  const platformFiles = results.sizes.platform.files;
  record('platform tarball ships the addon', platformFiles.includes(platform.binary), {
    ...(platformFiles.includes(platform.binary) ? {} : { error: `files: ${platformFiles}` }),
  });

  // 3. Offline install without Rust on PATH.
  const { env, dropped } = envWithoutRust();
  const cargo = spawnSync('cargo', ['--version'], { env });
  const rustc = spawnSync('rustc', ['--version'], { env });
  results.pathDropped = dropped;
  record('cargo and rustc absent from PATH', !!cargo.error && !!rustc.error, {
    ...(cargo.error && rustc.error ? {} : { error: 'cargo or rustc still runs with the reduced PATH' }),
  });
  // The root's registry dependencies come from npm's cache, as they would
  // for a user who has installed them before. `npm install` from a lock file
  // caches their tarballs but not the registry documents an install from a
  // tarball resolves versions with, so on a fresh machine one online install
  // of them (and everything they depend on) into a scratch project fills the
  // cache first; the install below then fetches nothing.
  const dependencies = Object.entries(readRoot().dependencies ?? {}).map(([name, range]) => `${name}@${range}`);
  if (dependencies.length > 0) {
    const scratch = join(work, 'cache-fill');
    mkdirSync(scratch);
    writeFileSync(join(scratch, 'package.json'), '{"name":"cache-fill","version":"0.0.0","private":true}\n');
    const fill = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...dependencies], {
      cwd: scratch,
      encoding: 'utf8',
    });
    record(`the root's dependencies (${dependencies.join(', ')}) in npm's cache`, fill.status === 0, {
      ...(fill.status === 0 ? {} : { error: `exit ${fill.status}: ${fill.stderr}` }),
    });
  }
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'quickstart', version: '0.0.0', private: true }, null, 2)}\n`);
  const installStart = performance.now();
  const install = spawnSync(
    'npm',
    ['install', '--offline', '--no-audit', '--no-fund', join(tarballs, platformPack.filename), join(tarballs, rootPack.filename)],
    { cwd: app, env, encoding: 'utf8' },
  );
  results.timings.installMs = Math.round(performance.now() - installStart);
  const installedRoot = join(app, 'node_modules', 'redesmyn');
  const installedPlatform = join(app, 'node_modules', platform.manifest.name);
  const installed = install.status === 0 && existsSync(installedRoot) && existsSync(installedPlatform);
  record('npm install --offline of both tarballs', installed, {
    ...(installed ? {} : { error: `exit ${install.status}: ${install.stderr}` }),
  });
  if (!installed) return finish();
  results.sizes.installed = { root: du(installedRoot), platform: du(installedPlatform) };
  // Mapped paths are real paths (macOS's temporary directory is behind a symbolic link).
  const platformReal = realpathSync(installedPlatform);

  // 4. The README's quick start, compiled strictly against the shipped types.
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  writeFileSync(
    join(app, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['quickstart.ts', ...(only === 'ts' ? [] : ['python.ts'])],
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(join(app, 'quickstart.ts'), readmeQuickStart() + PROBE);
  const venv = join(root, '.venv');
  if (only !== 'ts') {
    writeFileSync(join(app, 'python.ts'), PYTHON_QUICKSTART(venv) + PROBE);
    writeFileSync(join(app, 'pairs.py'), PYTHON_HANDLER);
  }
  const compiled = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: app, env, encoding: 'utf8' });
  record('quick start compiles with tsc --strict against the installed types', compiled.status === 0, {
    ...(compiled.status === 0 ? {} : { error: compiled.stdout + compiled.stderr }),
  });
  if (compiled.status !== 0) return finish();

  const addonFrom = (libraries) => libraries.find((l) => l.endsWith(`/${platform.binary}`));
  if (only !== 'python') {
    try {
      const r = await runQuickStart({ cwd: app, script: 'quickstart.js', env, path: '/predictions/sum', records: [{ a: 1, b: 2 }, { a: 0.5, b: 0.25 }] });
      results.timings.coldStartMs = Math.round(r.listeningMs);
      results.timings.firstAnswerMs = Math.round(r.firstAnswerMs);
      const answered = r.status === 200 && JSON.stringify(r.body.predictions) === '[3,0.75]';
      record('TypeScript quick start answers over HTTP', answered, { status: r.status, body: r.body, ...(answered ? {} : { error: JSON.stringify(r.body) }) });
      const addon = addonFrom(r.maps.libraries);
      const fromPackage = !!addon?.startsWith(platformReal);
      record('the addon is loaded from the installed platform package', fromPackage, { addon, ...(fromPackage ? {} : { error: `addon mapped from ${addon}` }) });
      const pythons = r.maps.libraries.filter((l) => /libpython|Python\.framework/.test(l));
      record('TypeScript-only process maps no libpython', pythons.length === 0, {
        source: r.maps.source,
        libraries: r.maps.libraries,
        ...(pythons.length ? { error: `mapped ${pythons.join(', ')} (read from ${r.maps.source})` } : {}),
      });
      const stopped = r.exit.code === 0;
      record('SIGINT stops the quick start cleanly', stopped, { ...(stopped ? {} : { error: `exit ${JSON.stringify(r.exit)}; stderr: ${r.stderr}` }) });
    } catch (e) {
      record('TypeScript quick start answers over HTTP', false, { error: e.message });
    }
  }

  // 5. With Python: the bridge from the platform package, the repository's venv.
  if (only !== 'ts') {
    const name = 'Python quick start answers through the packaged bridge';
    if (!results.bridgeInBuild) {
      record(name, false, {
        error:
          `the build output has no Python bridge library (${bridgeBuilt}), so the platform package ` +
          `${platform.manifest.name} ships none and cannot serve Python handlers; \`npm run build\` must ` +
          `produce ${bridgeFileName(process.platform)} beside ${platform.binary}`,
      });
    } else if (!existsSync(join(venv, 'pyvenv.cfg'))) {
      record(name, false, { error: `no virtual environment at ${venv}: run \`node scripts/setup.mjs\`` });
    } else {
      try {
        const r = await runQuickStart({ cwd: app, script: 'python.js', env, path: '/predictions/total', records: [{ a: 1, b: 2 }, { a: 0.5, b: 0.25 }] });
        results.timings.pythonColdStartMs = Math.round(r.listeningMs);
        const answered = r.status === 200 && JSON.stringify(r.body.predictions) === '[3,0.75]';
        const bridge = r.maps.libraries.find((l) => l.endsWith(`/${platform.bridge}`));
        const pythons = r.maps.libraries.filter((l) => /libpython|Python\.framework/.test(l));
        const bridgeOk = !!bridge?.startsWith(platformReal);
        const ok = answered && bridgeOk && pythons.length > 0;
        record(name, ok, {
          status: r.status,
          body: r.body,
          bridge,
          pythons,
          ...(ok
            ? {}
            : { error: `answer ${r.status} ${JSON.stringify(r.body)}; bridge mapped from ${bridge ?? 'nowhere'}; libpython: ${pythons.join(', ') || 'none'}; stderr: ${r.stderr.trim()}` }),
        });
      } catch (e) {
        record(name, false, { error: e.message });
      }
    }
  }

  // 6. The root package alone: a clear error at require time.
  const bare = join(work, 'root-only');
  mkdirSync(bare);
  writeFileSync(join(bare, 'package.json'), `${JSON.stringify({ name: 'root-only', version: '0.0.0', private: true }, null, 2)}\n`);
  const bareInstall = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', join(tarballs, rootPack.filename)], { cwd: bare, env, encoding: 'utf8' });
  const bareRequire = spawnSync(process.execPath, ['-e', "require('redesmyn')"], { cwd: bare, env, encoding: 'utf8' });
  const message = bareRequire.stderr.split('\n').find((l) => /Error/.test(l)) ?? bareRequire.stderr;
  const clear = bareInstall.status === 0 && bareRequire.status !== 0 && message.includes(platform.manifest.name);
  record('without the platform package, require names the missing package', clear, {
    message,
    ...(clear ? {} : { error: `install exit ${bareInstall.status} ${bareInstall.stderr}; require exit ${bareRequire.status}: ${bareRequire.stderr}` }),
  });

  // Report.
  const s = results.sizes;
  log(`sizes${results.release ? '' : ' (dev-profile addon; --release for the shipped sizes)'}:`);
  log(`  ${s.root.tarball}: packed ${mb(s.root.packed)}, unpacked ${mb(s.root.unpacked)}, installed ${mb(s.installed.root)}`);
  log(`  ${s.platform.tarball}: packed ${mb(s.platform.packed)}, unpacked ${mb(s.platform.unpacked)}, installed ${mb(s.installed.platform)}`);
  log(`install from tarballs: ${results.timings.installMs} ms`);
  if (results.timings.coldStartMs != null) {
    log(`cold start of the installed quick start: ${results.timings.coldStartMs} ms to listening, ${results.timings.firstAnswerMs} ms to the first answer`);
  }
  if (results.timings.pythonColdStartMs != null) log(`cold start with a Python handler: ${results.timings.pythonColdStartMs} ms`);
  if (!flag('--keep')) rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
  finish();
}

main().catch((e) => {
  record('pack-install', false, { error: e.stack ?? String(e) });
  finish();
});
