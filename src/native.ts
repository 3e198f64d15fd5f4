/**
 * Loads the addon before any other module does, through the loader napi-rs
 * generates (binding.js), so that a machine without a usable prebuilt binary
 * gets an error naming the package to install, instead of the loader's
 * generic "Cannot find native binding".
 *
 * Imported for its effect, first, by index.ts. On success the addon sits in
 * Node's module cache and later imports of '../binding' reuse it.
 */

/** The napi-rs name of this machine's platform: linux-x64-gnu, darwin-arm64, ... */
function hostPlatform(): string {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return `linux-${process.arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

/** The first line of each error along a cause chain. */
function reasons(error: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = error; e instanceof Error && out.length < 12; e = e.cause) {
    // The generated loader's own summary blames an npm bug; the causes say what happened.
    if (!e.message.startsWith('Cannot find native binding')) out.push(e.message.split('\n')[0]);
  }
  return out;
}

function explain(error: unknown): Error {
  const pkg = require('../package.json') as { name: string; optionalDependencies?: Record<string, string> };
  const platform = hostPlatform();
  const wanted = `${pkg.name}-${platform}`;
  const available = Object.keys(pkg.optionalDependencies ?? {}).map((name) => name.slice(pkg.name.length + 1));
  let installed = false;
  try {
    require.resolve(`${wanted}/package.json`);
    installed = true;
  } catch {
    // not installed
  }
  const what = !available.includes(platform)
    ? `redesmyn has no prebuilt binary for this platform (${platform}); prebuilt binaries exist for ${available.join(', ')}.`
    : installed
      ? `redesmyn could not load its binary from the package ${wanted}, which is installed.`
      : `redesmyn's binary for this platform is missing: the package ${wanted} is not installed. ` +
        `npm installs it as an optional dependency; reinstall without --omit=optional / --no-optional ` +
        `(and remove package-lock.json and node_modules if they were made on another platform).`;
  return new Error(`${what}\nLoader errors:\n  ${reasons(error).join('\n  ')}`, { cause: error });
}

try {
  require('../binding');
} catch (error) {
  throw explain(error);
}
