// What the scripts that make Python environments share: a lock between
// processes that set up the same thing at once (npm test's background
// prefetch and a suite or a crate's tests that need it), and a venv whose
// packages are installed once and again only when the list changes.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Runs `fn` while holding the lock directory `lock` (mkdir is atomic),
 * waiting for it if taken; a lock older than 20 minutes is taken to be left
 * over from a killed run.
 */
export function withLock(lock, fn) {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      Atomics.wait(pause, 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Makes the venv `venv` with `python` when it is missing, and pip-installs
 * `packages` when they differ from what its stamp file says was installed.
 * `run(cmd, args)` runs a command (and logs it as its caller likes).
 * Returns the venv's python.
 */
export function ensureVenv(run, python, venv, packages) {
  const bin = join(venv, 'bin', 'python');
  const stamp = join(venv, '.redesmyn-packages');
  const wanted = packages.join('\n');
  if (!existsSync(bin)) run(python, ['-m', 'venv', venv]);
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== wanted) {
    run(bin, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...packages]);
    writeFileSync(stamp, wanted);
  }
  return bin;
}
