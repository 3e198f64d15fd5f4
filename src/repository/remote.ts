/**
 * A model repository in an object store (`s3://`, `gs://`, `az://`, …):
 * copied into a local folder the repository loader reads, and brought up to
 * date before each `--watch` poll. The core downloads and verifies every
 * new or changed object before any of them appears in the copy (a new
 * version folder appears whole), and keeps the copy as it was when a
 * download fails, so a model is only ever loaded from complete files.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { MirrorSyncReport, NativeMirror as NativeMirrorType } from '../../binding';

/** How to reach a store and where its copy goes. */
export interface StoreAccess {
  /** `object_store` options (`aws_endpoint`, `google_service_account`, `azure_storage_account_key`, …), on top of the cloud's standard variables. */
  options?: Record<string, string>;
  /** Where copies are kept, one folder per URL (default `$REDESMYN_STORE_CACHE`, else `<tmpdir>/redesmyn-repositories`). */
  cacheDir?: string;
  /** Objects declared larger are refused before any download. */
  maxBytes?: number;
}

/** Where store copies go: `dir`, else `$REDESMYN_STORE_CACHE`, else `<tmpdir>/redesmyn-repositories`. */
export function storeCacheDir(dir?: string): string {
  return resolve(dir ?? process.env.REDESMYN_STORE_CACHE ?? join(tmpdir(), 'redesmyn-repositories'));
}

export class RemoteRepository {
  private constructor(
    readonly url: string,
    readonly native: NativeMirrorType,
  ) {}

  /** Opens the store and makes the first copy; throws naming the URL when it cannot. */
  static async open(url: string, access: StoreAccess = {}): Promise<RemoteRepository> {
    const { NativeMirror } = require('../../binding') as typeof import('../../binding');
    const cacheDir = storeCacheDir(access.cacheDir);
    let native: NativeMirrorType;
    try {
      native = new NativeMirror({ url, options: access.options ?? {}, cacheDir, maxBytes: access.maxBytes });
    } catch (error) {
      throw new Error(`model repository '${url}': ${(error as Error).message}`);
    }
    const remote = new RemoteRepository(url, native);
    try {
      remote.firstSync = await remote.sync();
    } catch (error) {
      throw new Error(`model repository ${(error as Error).message}`);
    }
    return remote;
  }

  /** What the first sync did (files downloaded, and reused from an earlier copy). */
  firstSync: MirrorSyncReport | undefined;

  /** The local copy, complete as of the last successful sync. */
  get dir(): string {
    return this.native.dir;
  }

  /** Brings the copy up to date; rejects (changing nothing) when a download fails. */
  sync(): Promise<MirrorSyncReport> {
    return this.native.sync();
  }
}
