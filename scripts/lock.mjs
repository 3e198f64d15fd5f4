// A lock between processes that set up the same thing at once (npm test's
// background prefetch and a suite or a crate's tests that need it): the lock
// is a directory, since mkdir is atomic. A lock older than 20 minutes is
// taken to be left over from a killed run.
import { mkdirSync, rmSync, statSync } from 'node:fs';

/** Runs `fn` while holding the lock directory `lock`, waiting for it if taken. */
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
