#!/usr/bin/env node
// `node scripts/image.mjs [slim|python ...] [--json FILE] [--base]`: builds
// the OCI images `redesmyn:slim` and `redesmyn:python` (deploy/image/) from
// what `npm run build` already made, never compiling inside the image
// (`--base`: only steps 1-2 and the python image's pip layers, what waits
// on the network):
//
// 1. podman, runc, debootstrap, tini (and haproxy, for the rollout suite)
//    from Debian's packages, when missing (apt-get; root).
// 2. The base. REDESMYN_IMAGE_BASE=<image> (e.g. debian:bookworm-slim on a
//    machine that reaches a registry) is used as it is. By default the same
//    Debian is made offline, as no registry answers here: `debootstrap
//    --variant=minbase bookworm`, tarred once into $REDESMYN_IMAGE_CACHE
//    (default $HOME/.cache/redesmyn-tools/image) and `podman import`ed as
//    localhost/redesmyn-base:bookworm.
// 3. The packed npm packages (the root package and this platform's, with the
//    built addon and Python bridge, as scripts/pack-install.mjs packs them),
//    installed with npm into a staging folder that the Containerfiles copy:
//    no compiler, no registry and no npm inside the image.
// 4. onnxruntime's shared library (from the onnxruntime-node package, as the
//    ONNX suites get it) for the slim image's ONNX runtime.
// 5. `podman build --format docker` (HEALTHCHECK kept) of each flavour.
//
// Prints (and with --json writes) each image's size uncompressed (podman's
// own figure) and compressed (`podman save` piped through gzip), and what
// the slim image's megabytes are.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { platformPackages, readRoot, root } from './npm-dirs.mjs';
import { onnxruntimeLibrary } from '../bench/setup.mjs';

export const BASE_IMAGE = 'localhost/redesmyn-base:bookworm';
export const IMAGES = { slim: 'localhost/redesmyn:slim', python: 'localhost/redesmyn:python' };
// The flags these machines need to run a container (crun and podman's default rlimits fail here); not for users.
export const PODMAN_RUN = ['--runtime', 'runc'];
export const PODMAN_LIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

const cache = process.env.REDESMYN_IMAGE_CACHE ?? join(homedir(), '.cache', 'redesmyn-tools', 'image');

function log(message) {
  process.stderr.write(`image: ${message}\n`);
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`'${cmd} ${args.join(' ')}' exited ${r.status}\n${r.stdout ?? ''}${r.stderr ?? ''}`.slice(0, 20000));
  return r;
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** podman, runc, debootstrap and tini from Debian's packages. */
export function ensureHostTools() {
  const wanted = { podman: 'podman', runc: 'runc', debootstrap: 'debootstrap', 'tini-static': 'tini', haproxy: 'haproxy' };
  const missing = Object.entries(wanted).filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  log(`apt-get install ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', ...missing], { env });
}

function imageExists(name) {
  return spawnSync('podman', ['image', 'exists', name]).status === 0;
}

/** The Debian bookworm base image, made offline with debootstrap and cached outside the clone. */
export function ensureBase() {
  if (process.env.REDESMYN_IMAGE_BASE) return process.env.REDESMYN_IMAGE_BASE;
  if (imageExists(BASE_IMAGE)) return BASE_IMAGE;
  mkdirSync(cache, { recursive: true });
  const tarball = join(cache, 'bookworm-minbase.tar');
  if (!existsSync(tarball)) {
    const dir = mkdtempSync(join(tmpdir(), 'redesmyn-debootstrap-'));
    const started = Date.now();
    log(`debootstrap --variant=minbase bookworm ${dir}`);
    try {
      run('nice', ['-n', '10', 'debootstrap', '--variant=minbase', 'bookworm', dir, process.env.REDESMYN_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian']);
      // Package lists and caches are not part of the base.
      run('sh', ['-c', `rm -rf "${dir}"/var/cache/apt/archives/*.deb "${dir}"/var/lib/apt/lists/*`]);
      run('tar', ['-C', dir, '-cf', `${tarball}.partial`, '.']);
      run('mv', [`${tarball}.partial`, tarball]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    log(`base made in ${((Date.now() - started) / 1000).toFixed(0)} s (${mb(statSync(tarball).size)})`);
  }
  log(`podman import ${tarball} ${BASE_IMAGE}`);
  run('podman', ['import', '--change', 'CMD ["/bin/bash"]', tarball, BASE_IMAGE]);
  return BASE_IMAGE;
}

function mb(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * The build context: the Containerfiles, node (stripped of its debug
 * symbols), tini, and /app: redesmyn installed by npm from its packed
 * packages (the addon and bridge that `npm run build` made, stripped).
 */
export function stageContext() {
  const pkg = readRoot();
  const suffix = `${process.platform}-${process.arch}-gnu`;
  const platform = platformPackages(pkg).find((p) => p.suffix === suffix);
  if (!platform) throw new Error(`no platform package for ${suffix}`);
  const built = join(root, platform.binary);
  if (!existsSync(built) || !existsSync(join(root, 'binding.js')) || !existsSync(join(root, 'dist', 'cli.js'))) {
    throw new Error(`${platform.binary}, binding.js or dist/cli.js missing in ${root}: run \`npm run build\` first`);
  }
  const ctx = mkdtempSync(join(tmpdir(), 'redesmyn-image-'));
  copyFileSync(built, join(platform.dir, platform.binary));
  const bridge = join(root, platform.bridge);
  if (existsSync(bridge)) copyFileSync(bridge, join(platform.dir, platform.bridge));
  else throw new Error(`${platform.bridge} missing in ${root}: the python image needs the Python bridge (npm run build makes it)`);
  const tarballs = join(ctx, 'tarballs');
  mkdirSync(tarballs);
  const pack = (cwd) => JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd }).stdout)[0].filename;
  const files = [pack(platform.dir), pack(root)];
  const app = join(ctx, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'redesmyn-image', version: pkg.version, private: true }, null, 2)}\n`);
  run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--no-package-lock', ...files.map((f) => join(tarballs, f))], { cwd: app });
  rmSync(join(app, 'package.json'));
  // Debug symbols are no part of what serves: strip the addon, the bridge and node.
  for (const f of [platform.binary, platform.bridge]) run('strip', ['--strip-unneeded', join(app, 'node_modules', platform.manifest.name, f)]);
  run('strip', ['-o', join(ctx, 'node'), process.execPath]);
  copyFileSync('/usr/bin/tini-static', join(ctx, 'tini'));
  // onnxruntime's library for the ONNX runtime, from the onnxruntime-node package (what the ONNX suites use).
  const ort = onnxruntimeLibrary();
  copyFileSync(ort, join(ctx, 'libonnxruntime.so.1'));
  for (const f of ['Containerfile.slim', 'Containerfile.python', 'healthcheck.js']) copyFileSync(join(root, 'deploy', 'image', f), join(ctx, f));
  copyFileSync(join(root, 'requirements.txt'), join(ctx, 'requirements.txt'));
  return { ctx, addon: join(app, 'node_modules', platform.manifest.name, platform.binary), bridge: join(app, 'node_modules', platform.manifest.name, platform.bridge), ort: join(ctx, 'libonnxruntime.so.1') };
}

/** Bytes of an image: podman's figure, and `podman save | gzip -c | wc -c`. */
export function imageSize(name) {
  const uncompressed = Number(run('podman', ['image', 'inspect', name, '--format', '{{.Size}}']).stdout.trim());
  const compressed = Number(run('sh', ['-c', `podman save ${name} 2>/dev/null | gzip -1 -c | wc -c`]).stdout.trim());
  return { uncompressed, compressed };
}

/** `podman build` as the images are built (the same arguments keep the layer cache shared). */
function podmanBuild(base, containerfile, tag, ctx) {
  // A CA bundle the host trusts (a TLS-re-signing proxy's) is mounted for pip during the build, never copied in.
  const ca = process.env.PIP_CERT ?? process.env.SSL_CERT_FILE;
  const caArgs = ca && existsSync(ca) ? ['--volume', `${ca}:/run/build-ca.crt:ro`, '--build-arg', 'PIP_CERT=/run/build-ca.crt'] : [];
  run(
    'nice',
    ['-n', '10', 'podman', 'build', ...PODMAN_RUN, ...PODMAN_LIMITS, '--network', 'host', '--format', 'docker', ...caArgs, '--build-arg', `BASE=${base}`, '-f', containerfile, '-t', tag, ctx],
    { stdio: ['ignore', 2, 2] },
  );
}

/**
 * The python image's layers that need no build output (Debian's Python,
 * the pip install): built ahead, they wait only on the network, and the
 * image's own build then finds them in podman's layer cache.
 */
export function prebuildPythonLayers(base) {
  const ctx = mkdtempSync(join(tmpdir(), 'redesmyn-image-deps-'));
  try {
    const full = readFileSync(join(root, 'deploy', 'image', 'Containerfile.python'), 'utf8');
    writeFileSync(join(ctx, 'Containerfile'), full.slice(0, full.indexOf('\nCOPY tini')) + '\n');
    copyFileSync(join(root, 'requirements.txt'), join(ctx, 'requirements.txt'));
    podmanBuild(base, join(ctx, 'Containerfile'), 'localhost/redesmyn-python-layers:cache', ctx);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** Builds the flavours asked for; returns their sizes and build times. */
export function buildImages(flavours = ['slim', 'python']) {
  ensureHostTools();
  const base = ensureBase();
  const { ctx, addon, bridge, ort } = stageContext();
  const results = { base, images: {} };
  try {
    results.parts = { node: statSync(join(ctx, 'node')).size, addon: statSync(addon).size, bridge: statSync(bridge).size, onnxruntime: statSync(ort).size };
    for (const flavour of flavours) {
      const started = Date.now();
      log(`podman build ${IMAGES[flavour]}`);
      podmanBuild(base, join(ctx, `Containerfile.${flavour}`), IMAGES[flavour], ctx);
      results.images[flavour] = { name: IMAGES[flavour], buildMs: Date.now() - started, ...imageSize(IMAGES[flavour]) };
      log(`${IMAGES[flavour]}: ${mb(results.images[flavour].uncompressed)} uncompressed, ${mb(results.images[flavour].compressed)} compressed`);
    }
  } finally {
    rmSync(ctx, { recursive: true, force: true });
    // Earlier builds of these images, now untagged, are dropped (only this project's, by their label).
    spawnSync('podman', ['image', 'prune', '-f', '--filter', 'label=org.opencontainers.image.title=redesmyn'], { stdio: 'ignore' });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const json = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
  const flavours = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--json');
  try {
    if (args.includes('--base')) {
      // Only what waits on the network (Debian's packages, debootstrap): run in the background while Rust builds.
      ensureHostTools();
      const base = ensureBase();
      prebuildPythonLayers(base);
      console.log(JSON.stringify({ base }));
      process.exit(0);
    }
    const results = buildImages(flavours.length ? flavours : undefined);
    if (json) writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
    console.log(JSON.stringify(results));
  } catch (error) {
    process.stderr.write(`image: ${error.message}\n`);
    process.exit(1);
  }
}
