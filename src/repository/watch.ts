/**
 * Hot reload of a repository: polls each versioned model's folder; when the
 * version policy selects a newer version folder than the model's default,
 * that version is loaded and checked (one row of zeros) in a child process
 * first, then added to the running server beside the others (loaded there
 * before it is reachable), then the model's default version moves to it in
 * the registry: the old default answers every request until then, and
 * stays if the new one fails. Versions the policy no longer selects are
 * then removed: out of lookup at once, unloaded once their requests are
 * answered. A version that fails is reported once and tried again only
 * when its folder changes.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Endpoint } from '../endpoint';
import type { Fields } from '../schema';
import { checkPlanned, endpointFactory, planVersion, selectVersions, versionFolders, type Followed, type RepositoryModel } from './index';

/** What the watcher needs from a running server. */
export interface WatchHost {
  /** Adds a model while serving; resolves once it serves. */
  add(endpoint: Endpoint<Fields, string, unknown>): Promise<void>;
  setDefault(name: string, version: string): void;
  remove(name: string, version: string): Promise<void>;
  pythonExecutable(): string;
}

export interface WatchOptions {
  /** Poll interval (default 1000 ms). */
  intervalMs?: number;
  /** Where events go (default: JSON lines on stderr). */
  log?: (event: Record<string, unknown>) => void;
  /** Brings the folder up to date first (a repository copied from an object store); a failure skips the poll. */
  sync?: () => Promise<{ downloaded: number; reused: number; removed: number }>;
}

export class RepositoryWatcher {
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  readonly #log: (event: Record<string, unknown>) => void;

  constructor(
    readonly followed: Followed[],
    readonly index: RepositoryModel[],
    readonly host: WatchHost,
    readonly options: WatchOptions = {},
  ) {
    this.#log = options.log ?? ((event) => process.stderr.write(`${JSON.stringify({ target: 'redesmyn::repository', ...event })}\n`));
  }

  start(): void {
    this.#timer = setInterval(() => void this.poll(), this.options.intervalMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass over the followed models (skipped while the previous one runs). */
  async poll(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      if (this.options.sync) {
        try {
          const report = await this.options.sync();
          if (report.downloaded + report.removed > 0) this.#log({ level: 'INFO', message: 'repository synced', ...report });
        } catch (error) {
          // The copy is as it was: what serves keeps serving; the next poll tries again.
          this.#log({ level: 'WARN', message: 'repository sync failed; trying again at the next poll', reason: error instanceof Error ? error.message : String(error) });
          return;
        }
      }
      for (const f of this.followed) {
        if (!f.pinned) await this.#follow(f);
      }
    } finally {
      this.#running = false;
    }
  }

  async #follow(f: Followed): Promise<void> {
    let newest: number | undefined;
    try {
      newest = selectVersions(versionFolders(f.folder), f.policy)[0];
    } catch {
      return; // the folder is being changed; the next poll sees it whole
    }
    if (newest === undefined || newest <= f.current) return;
    const folder = join(f.folder, String(newest));
    const changed = newestChange(folder);
    if (f.failed.get(newest) === changed) return;
    const model: RepositoryModel = { name: f.name, folder, state: 'failed', version: String(newest) };
    try {
      const plan = await planVersion(model, f.parentFile, String(newest));
      if (plan.runtime.kind !== f.plan.runtime.kind || (plan.runtime.kind === 'python' && f.plan.runtime.kind === 'python' && plan.runtime.module !== f.plan.runtime.module)) {
        throw new Error(`${plan.file}: version ${newest} changes the runtime (${f.plan.runtime.name} -> ${plan.runtime.name}); restart to serve it`);
      }
      const checked = await checkPlanned(this.host.pythonExecutable(), plan);
      if (checked?.error) throw new Error(`${plan.file}: ${checked.error}`);
      const version = String(newest);
      try {
        await this.host.add(endpointFactory(plan, checked)(`/predictions/${f.name}/versions/${version}`, version));
      } catch (error) {
        throw new Error(`${plan.file}: version ${newest} did not load in the server: ${error instanceof Error ? error.message : String(error)}`);
      }
      // Only now, with the new version serving, do unversioned requests move to it.
      this.host.setDefault(f.name, version);
      this.#log({ level: 'INFO', message: 'default version moved', model: f.name, from: String(f.current), version: String(newest) });
      for (const m of this.index) if (m.name === f.name && m.default) m.default = false;
      this.index.push({ ...model, state: 'ready', default: true, path: `/predictions/${f.name}/versions/${newest}` });
      f.current = newest;
      f.plan = plan;
      // Versions the policy no longer selects go, once their requests are answered.
      const keep = new Set(selectVersions([...new Set([...f.served, newest])].sort((x, y) => y - x), f.policy));
      for (const old of f.served.filter((v) => !keep.has(v))) {
        await this.host.remove(f.name, String(old));
        this.#log({ level: 'INFO', message: 'version removed', model: f.name, version: String(old) });
      }
      f.served = [...keep];
    } catch (error) {
      f.failed.set(newest, changed);
      const reason = error instanceof Error ? error.message : String(error);
      this.#log({ level: 'ERROR', message: 'new version failed; the previous one keeps serving', model: f.name, version: String(newest), serving: String(f.current), reason });
      this.index.push({ ...model, state: 'failed', reason });
    }
  }
}

/** The last change of a folder or of any file directly in it (ms). */
function newestChange(folder: string): number {
  let newest = 0;
  try {
    newest = statSync(folder).mtimeMs;
    for (const entry of readdirSync(folder)) newest = Math.max(newest, statSync(join(folder, entry)).mtimeMs);
  } catch {
    // gone or changing: compared as is
  }
  return newest;
}
