/**
 * The packages a user installs: the root package and the host's platform
 * package, packed with `npm pack` and installed offline into an empty
 * project with no Rust on PATH, running the README's quick start
 * (scripts/pack-install.mjs does the work once; each test asserts one thing
 * a user would see). Uses the addon `npm run build` produced.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module script, no type declarations
import { check, platformPackages } from '../scripts/npm-dirs.mjs';

const root = join(__dirname, '..');

interface Check {
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}
interface Report {
  platformPackage: string;
  bridgeInBuild: boolean;
  checks: Record<string, Check>;
  sizes: {
    root: { packed: number; unpacked: number; files: string[] };
    platform: { packed: number; unpacked: number; files: string[] };
    installed: { root: number; platform: number };
  };
  timings: { installMs: number; coldStartMs?: number; firstAnswerMs?: number };
  pathDropped: string[];
}

let report: Report;
let output: string;
const scratch = mkdtempSync(join(tmpdir(), 'redesmyn-package-test-'));

beforeAll(() => {
  const json = join(scratch, 'report.json');
  const run = spawnSync(process.execPath, [join(root, 'scripts', 'pack-install.mjs'), '--json', json], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  output = `${run.stdout}${run.stderr}`;
  report = JSON.parse(readFileSync(json, 'utf8'));
}, 240_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Asserts a check of the script passed, showing its own explanation when not. */
function passed(name: string): Check {
  const c = report.checks[name];
  expect(c, `check '${name}' did not run; script output:\n${output}`).toBeDefined();
  expect(c.ok, c.error).toBe(true);
  return c;
}

describe('platform packages', () => {
  it('npm/<platform>/package.json and the optional dependencies follow package.json', () => {
    expect(check()).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const p of platformPackages(pkg)) {
      const manifest = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'));
      expect(manifest.version).toBe(pkg.version);
      expect(pkg.optionalDependencies[manifest.name]).toBe(pkg.version);
      expect(manifest.main).toBe(p.binary);
      expect(manifest.files).toEqual([p.binary, p.bridge]);
    }
  });
});

describe('offline install from the tarballs', () => {
  it('the root tarball ships the loader, types and compiled TypeScript but no binary', () => {
    passed('root tarball ships the loader and types but no binary');
    const files = report.sizes.root.files;
    expect(files).toContain('binding.js');
    expect(files.filter((f) => /\.(node|so|dylib)$/.test(f))).toEqual([]);
  });

  it('the platform tarball ships the addon', () => {
    passed('platform tarball ships the addon');
  });

  it('installs with npm install --offline and no cargo or rustc on PATH', () => {
    passed('cargo and rustc absent from PATH');
    passed('npm install --offline of both tarballs');
  });

  it("the README's quick start compiles with tsc --strict against the installed types", () => {
    passed('quick start compiles with tsc --strict against the installed types');
  });

  it('the installed quick start answers a prediction over HTTP and stops on SIGINT', () => {
    const c = passed('TypeScript quick start answers over HTTP');
    expect(c.body).toMatchObject({ predictions: [3, 0.75] });
    passed('SIGINT stops the quick start cleanly');
  });

  it('the addon that serves is the one from the installed platform package', () => {
    const c = passed('the addon is loaded from the installed platform package');
    expect(c.addon).toContain(`node_modules/${report.platformPackage}/`);
  });

  it('a TypeScript-only server maps no libpython', () => {
    const c = passed('TypeScript-only process maps no libpython');
    expect((c.libraries as string[]).length).toBeGreaterThan(0); // the probe really read the maps
  });

  it('a Python handler runs through the bridge shipped in the platform package', () => {
    const c = passed('Python quick start answers through the packaged bridge');
    expect(c.body).toMatchObject({ predictions: [3, 0.75] });
    expect(c.bridge).toContain(`node_modules/${report.platformPackage}/`);
  });

  it('without the platform package, requiring redesmyn names the package that is missing', () => {
    const c = passed('without the platform package, require names the missing package');
    expect(c.message).toContain(report.platformPackage);
    expect(c.message).toContain('not installed');
  });

  it('reports packed and installed sizes, install time and cold start', () => {
    const { sizes, timings } = report;
    expect(sizes.root.packed).toBeGreaterThan(0);
    expect(sizes.platform.packed).toBeGreaterThan(sizes.root.packed);
    expect(sizes.installed.platform).toBeGreaterThan(0);
    expect(timings.installMs).toBeGreaterThan(0);
    expect(timings.coldStartMs).toBeGreaterThan(0);
    expect(output).toMatch(/install from tarballs: \d+ ms/);
  });
});
