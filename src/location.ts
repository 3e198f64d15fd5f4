/**
 * Locations: a local path, or a URL of an object store (`s3://`, `gs://`,
 * `az://`, `abfs://`, `http(s)://`), which the core reads through
 * `object_store` (see docs/stores.md).
 */

/** Whether `location` is a store URL rather than a local path. */
export function isStoreUrl(location: string): boolean {
  return /^(s3|s3a|gs|az|azure|adl|abfs|abfss|https?):\/\/[^/]/i.test(location);
}

/** `name` inside the folder `location`, for a path or a URL alike. */
export function joinLocation(location: string, name: string): string {
  return isStoreUrl(location) ? `${location.replace(/\/+$/, '')}/${name}` : `${location.replace(/\/+$/, '') || '/'}/${name}`;
}

/** `KEY=VALUE` arguments of a repeatable flag as an object; throws naming the flag on a malformed one. */
export function keyValues(pairs: readonly string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new TypeError(`${flag} takes KEY=VALUE, got '${p}'`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}
