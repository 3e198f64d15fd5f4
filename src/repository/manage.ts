/**
 * The management API's TypeScript side. The core checks the token, the
 * names and that `path` lies inside the model root, then calls `deploy`
 * here: a runtime name and a file become a model the same way a
 * repository folder does (settings read strictly, the runtime table, the
 * endpoint factory), added to the running server. `persist` writes each
 * change into the repository's settings files (atomically: a temporary
 * file renamed over the old one), so a restart serves the same models,
 * versions and weights.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import type { Endpoint } from '../endpoint';
import type { Fields } from '../schema';
import { checkPlanned, endpointFactory, registerRepository, type Planned, type RepositoryModel } from './index';
import { resolveRuntime } from './runtimes';
import { modelSettingsFrom, SettingsError } from './settings';

/** What the core hands over: checked names, a canonical path inside the root. */
export interface DeploySpec {
  name: string;
  version: string | null;
  /** `null`: the model folder `path`, as its own `model-settings.json` says. */
  runtime: string | null;
  path: string;
  config: Record<string, unknown> | null;
}

/** A change that took effect, and the model's state after it. */
export interface Change {
  kind: 'deployed' | 'removed' | 'traffic';
  name: string;
  version: string | null;
  spec: DeploySpec | null;
  /** The versions served now; `null` for an unversioned model. */
  versions: (string | null)[];
  traffic: Record<string, number> | null;
}

export interface ManageHost {
  /** Adds an endpoint's model to the running server; resolves once it serves. */
  add(endpoint: Endpoint<Fields, string, unknown>): Promise<void>;
  setTraffic(name: string, weights: Record<string, number>): void;
  setDefault(name: string, version: string): void;
  pythonExecutable(): string;
}

/** Loads a model for the management API; throws with the reason. */
export async function deploy(host: ManageHost, spec: DeploySpec): Promise<void> {
  if (spec.runtime === null) {
    const { index, traffic, defaults } = await registerRepository({ register: (e) => host.add(e), pythonExecutable: () => host.pythonExecutable() }, dirname(spec.path), {
      only: basename(spec.path),
    });
    const failed = index.filter((m) => m.state === 'failed');
    if (index.length === 0 || failed.length === index.length) throw new Error(failed.map((m) => m.reason).join('; ') || 'nothing to load');
    for (const [name, version] of defaults) host.setDefault(name, version);
    for (const [name, weights] of traffic) host.setTraffic(name, weights);
    return;
  }
  const file = `management request for '${spec.name}'`;
  const config = spec.config ?? {};
  const parameters = typeof config.parameters === 'object' && config.parameters !== null ? config.parameters : {};
  const settings = modelSettingsFrom({ ...config, name: spec.name, runtime: spec.runtime, parameters: { ...parameters, uri: spec.path } }, file);
  const runtime = resolveRuntime(settings);
  if ('error' in runtime) throw new SettingsError(file, runtime.key, runtime.error);
  if (runtime.kind === 'python' && runtime.artifact !== 'uri') throw new SettingsError(file, 'runtime', 'a custom Python class is deployed by its model folder (POST /v2/repository/models/{name}/load)');
  if (statSync(spec.path).isDirectory()) throw new SettingsError(file, 'path', `expected the model's file, got the folder '${spec.path}'`);
  const version = spec.version ?? undefined;
  const model: RepositoryModel = { name: spec.name, version, runtime: runtime.name, folder: dirname(spec.path), state: 'failed' };
  const plan: Planned = { model, served: version, settings, file, runtime, artifact: spec.path };
  // What the model takes is read from it only when the config does not say (a child Python; slower).
  const checked = settings.inputs === undefined && runtime.kind === 'python' ? await checkPlanned(host.pythonExecutable(), plan) : undefined;
  if (checked?.error) throw new Error(`${spec.path}: ${checked.error}`);
  const path = version === undefined ? `/predictions/${spec.name}` : `/predictions/${spec.name}/versions/${version}`;
  await host.add(endpointFactory(plan, checked)(path, version));
}

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

function readJson(file: string): Record<string, unknown> | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : undefined;
}

/**
 * Writes a change into the repository at `root`: `<root>/<name>/model-settings.json`
 * (versions served as a `specific` version policy, traffic weights) and, for a
 * deployed version, `<root>/<name>/<version>/model-settings.json` naming its
 * artifact. A model with no version left has its settings renamed to
 * `model-settings.json.removed` (no file is deleted). Versions are folder
 * numbers in a repository: a version that is not a number is not persisted.
 */
export function persist(root: string, change: Change): void {
  const folder = join(root, change.name);
  const parentFile = join(folder, 'model-settings.json');
  // An unversioned folder served under its settings' `parameters.version` (MLServer's) has no version folder: it is persisted as unversioned.
  const own = (readJson(parentFile)?.parameters as { version?: unknown } | undefined)?.version;
  const versions = change.versions.map((v) => (v !== null && v === own && !existsSync(join(folder, v)) ? null : v));
  const numbered = versions.filter((v): v is string => v !== null);
  if (numbered.some((v) => !/^\d+$/.test(v))) throw new Error(`model '${change.name}': versions ${numbered.join(', ')} are not all numbers, so they cannot be version folders; not persisted`);
  if (versions.length === 0) {
    if (existsSync(parentFile)) renameSync(parentFile, `${parentFile}.removed`);
    return;
  }
  if (numbered.length === 0) return; // an unversioned model: its folder already says it all
  if (change.kind === 'deployed' && change.spec?.runtime && change.version !== null) {
    const vdir = join(folder, change.version);
    mkdirSync(vdir, { recursive: true });
    const config = change.spec.config ?? {};
    const parameters = typeof config.parameters === 'object' && config.parameters !== null ? config.parameters : {};
    writeJson(join(vdir, 'model-settings.json'), {
      ...config,
      name: change.name,
      runtime: change.spec.runtime,
      parameters: { ...parameters, uri: relative(vdir, change.spec.path) },
    });
  }
  const parent = readJson(parentFile) ?? readJson(`${parentFile}.removed`) ?? {};
  if (parent.runtime === undefined && parent.implementation === undefined) parent.runtime = change.spec?.runtime ?? undefined;
  parent.name ??= change.name;
  // Versions deployed or removed through the API are listed; a traffic change or a folder load keeps the folder's own policy.
  const versionsChanged = change.kind === 'removed' || (change.kind === 'deployed' && change.spec?.runtime);
  if (versionsChanged) parent.versionPolicy = { specific: { versions: numbered.map(Number).sort((a, b) => a - b) } };
  if (parent.defaultVersion !== undefined && !numbered.includes(String(parent.defaultVersion))) delete parent.defaultVersion;
  if (change.traffic) parent.traffic = change.traffic;
  else delete parent.traffic;
  mkdirSync(folder, { recursive: true });
  writeJson(parentFile, parent);
}
