#!/usr/bin/env node
// `node scripts/pythons.mjs`: the Python environments the "any Python" suite
// (__test__/pythons.test.ts) runs the same built addon and bridge against.
//
// - One venv per supported CPython minor (3.10 to 3.13, from pyenv), with
//   requirements.txt installed and a small iris model trained by that
//   environment's own scikit-learn (pickles do not cross versions).
// - Environments that must be refused: Python 3.9, a venv without polars, a
//   venv whose pyvenv.cfg names another minor than its python runs (as after
//   its base Python was replaced), and two interpreters whose build
//   configuration (sysconfig) says "no shared libpython" or "free-threaded":
//   the real CPython 3.12 run with a rewritten _sysconfigdata module, since
//   no static or free-threaded build is installed here.
//
// Idempotent and cached under ~/.cache/redesmyn-pythons (REDESMYN_PYTHONS_DIR
// overrides): a venv is rebuilt only when requirements.txt or its Python
// changes; pip reuses its own download cache. Prints one JSON line
// describing every environment (also written to <dir>/environments.json).
// A missing pyenv version is recorded with the reason, never skipped: the
// suite fails that check.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dir = process.env.REDESMYN_PYTHONS_DIR ?? join(homedir(), '.cache', 'redesmyn-pythons');
const pyenvRoot = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv');
export const MINORS = ['3.10', '3.11', '3.12', '3.13'];
const quiet = process.argv.includes('--quiet');

function log(message) {
  if (!quiet) console.error(`pythons: ${message}`);
}

function run(cmd, args, options = {}) {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (r.status !== 0) {
    throw new Error(`'${cmd} ${args.join(' ')}' failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
  }
  return r.stdout;
}

/** The newest pyenv build of `minor` (e.g. 3.12 -> ~/.pyenv/versions/3.12.1/bin/python3.12). */
function pyenvPython(minor) {
  const versions = join(pyenvRoot, 'versions');
  const found = existsSync(versions)
    ? readdirSync(versions)
        .filter((v) => new RegExp(`^${minor.replace('.', '\\.')}\\.\\d+$`).test(v))
        .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]))
    : [];
  for (const version of found) {
    const exe = join(versions, version, 'bin', `python${minor}`);
    if (existsSync(exe)) return { exe, version };
  }
  // Elsewhere (CI runners with actions/setup-python), `python3.X` on PATH.
  const onPath = spawnSync(`python${minor}`, ['-c', 'import sys, platform; print(sys.executable); print(platform.python_version())'], {
    encoding: 'utf8',
  });
  if (onPath.status === 0) {
    const [exe, version] = onPath.stdout.trim().split('\n');
    if (exe && version) return { exe, version };
  }
  return { error: `no CPython ${minor} under ${versions} nor python${minor} on PATH (install it with: pyenv install ${minor})` };
}

const requirements = readFileSync(join(root, 'requirements.txt'));

const TRAIN = `
import sys, joblib
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
path = Path(sys.argv[1]) / "iris" / "1" / "1" / "model.joblib"
path.parent.mkdir(parents=True, exist_ok=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), path)
`;

/** A venv of `python` with requirements.txt and a trained model, rebuilt when either input changes. */
function goodVenv(minor, python) {
  const home = join(dir, `venv-${minor}`);
  const venvPython = join(home, 'bin', 'python');
  const digest = createHash('sha256').update(requirements).update(python.exe).update(python.version).update(TRAIN).digest('hex');
  const stamp = join(home, '.redesmyn-stamp');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return { venv: home, python: venvPython, models: join(home, 'models') };
  rmSync(home, { recursive: true, force: true });
  run(python.exe, ['-m', 'venv', home]);
  run(venvPython, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', join(root, 'requirements.txt')]);
  run(venvPython, ['-c', TRAIN, join(home, 'models')]);
  writeFileSync(stamp, digest);
  return { venv: home, python: venvPython, models: join(home, 'models') };
}

/** A venv with nothing installed (made fresh: it is quick). */
function bareVenv(name, python) {
  const home = join(dir, name);
  rmSync(home, { recursive: true, force: true });
  run(python.exe, ['-m', 'venv', '--without-pip', home]);
  return home;
}

/**
 * An interpreter whose sysconfig build variables are rewritten by `edit`:
 * bin/python runs the real CPython with _PYTHON_SYSCONFIGDATA_NAME pointing at
 * a copy of its _sysconfigdata module, as a static or free-threaded build
 * would report itself.
 */
function rewrittenBuild(name, python, edit) {
  const home = join(dir, name);
  rmSync(home, { recursive: true, force: true });
  mkdirSync(join(home, 'bin'), { recursive: true });
  mkdirSync(join(home, 'sysconfig'), { recursive: true });
  const script = `
import json, sys, sysconfig
name = sysconfig._get_sysconfigdata_name()
vars = dict(__import__(name).build_time_vars)
vars.update(json.loads(sys.argv[1]))
open(sys.argv[2], "w").write("build_time_vars = " + repr(vars) + "\\n")
`;
  run(python.exe, ['-c', script, JSON.stringify(edit), join(home, 'sysconfig', '_sysconfigdata_redesmyn_test.py')]);
  const exe = join(home, 'bin', 'python');
  writeFileSync(
    exe,
    `#!/bin/sh\n_PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata_redesmyn_test PYTHONPATH='${join(home, 'sysconfig')}' exec '${python.exe}' "$@"\n`,
  );
  chmodSync(exe, 0o755);
  return exe;
}

export function setUp() {
  mkdirSync(dir, { recursive: true });
  const pythons = Object.fromEntries(MINORS.map((m) => [m, pyenvPython(m)]));
  const envs = { dir, versions: {}, bad: {} };
  for (const minor of MINORS) {
    const python = pythons[minor];
    if (python.error) {
      envs.versions[minor] = { error: python.error };
      continue;
    }
    try {
      envs.versions[minor] = { version: python.version, ...goodVenv(minor, python) };
    } catch (e) {
      envs.versions[minor] = { error: String(e.message ?? e) };
    }
  }
  const base = pythons['3.12'];
  const bad = (name, make) => {
    try {
      envs.bad[name] = make();
    } catch (e) {
      envs.bad[name] = { error: String(e.message ?? e) };
    }
  };
  bad('old', () => {
    const p39 = pyenvPython('3.9');
    if (p39.error) throw new Error(p39.error);
    return { venv: bareVenv('bad-old', p39) };
  });
  bad('noPolars', () => {
    if (base.error) throw new Error(base.error);
    return { venv: bareVenv('bad-no-polars', base) };
  });
  bad('mismatch', () => {
    if (base.error) throw new Error(base.error);
    const venv = bareVenv('bad-mismatch', base);
    const cfg = join(venv, 'pyvenv.cfg');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(/^version\s*=.*$/m, 'version = 3.11.7'));
    return { venv };
  });
  bad('static', () => {
    if (base.error) throw new Error(base.error);
    return { executable: rewrittenBuild('bad-static', base, { Py_ENABLE_SHARED: 0, LDLIBRARY: 'libpython3.12.a', INSTSONAME: 'libpython3.12.a' }) };
  });
  bad('freeThreaded', () => {
    if (base.error) throw new Error(base.error);
    return { executable: rewrittenBuild('bad-free-threaded', base, { Py_GIL_DISABLED: 1 }) };
  });
  writeFileSync(join(dir, 'environments.json'), JSON.stringify(envs, null, 2));
  return envs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const envs = setUp();
  console.log(JSON.stringify(envs));
  const failed = Object.entries(envs.versions).filter(([, v]) => v.error);
  for (const [minor, v] of failed) console.error(`pythons: ${minor}: ${v.error}`);
  process.exit(failed.length ? 1 : 0);
}
