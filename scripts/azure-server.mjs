#!/usr/bin/env node
// An Azure Blob Storage emulator for the tests: Azurite (the npm package
// `azurite`), installed with npm at a pinned version into
// $HOME/.cache/redesmyn-tools/azurite-<version> (or $REDESMYN_TOOLS_DIR),
// outside the clone so the project's own `npm install` stays small. The
// Azure SDK's blob client (`@azure/storage-blob`) is installed beside it for
// tests that arrange blobs.
//
//   import { startAzureServer, blobClientModule } from './scripts/azure-server.mjs';
//   const az = await startAzureServer();  // { endpoint, account, accountKey, options, connectionString, stop() }
//
//   node scripts/azure-server.mjs install       install it if it is not cached; print its folder
//   node scripts/azure-server.mjs serve         start one, print its JSON config, stop on Ctrl-C

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installOnce, runWithRetries, serveFromCli, startServer, stopper, toolsDir } from './emulator.mjs';

export const AZURITE_VERSION = '3.37.0';
export const STORAGE_BLOB_VERSION = '12.34.0';
/** Azurite's well-known development account and key. */
export const ACCOUNT = 'devstoreaccount1';
export const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function azuriteDir() {
  return path.join(toolsDir(), `azurite-${AZURITE_VERSION}`);
}

const installed = () => ['azurite', '@azure/storage-blob'].every((p) => fs.existsSync(path.join(azuriteDir(), 'node_modules', p, 'package.json')));

export async function installAzureServer({ log } = {}) {
  const dir = azuriteDir();
  await installOnce({
    dir,
    done: installed,
    log,
    label: 'azure-server',
    install: async (stage) => {
      const started = Date.now();
      await fsp.writeFile(path.join(stage, 'package.json'), JSON.stringify({ name: 'redesmyn-azurite', private: true }));
      const args = ['install', '--no-audit', '--no-fund', '--omit=dev', '--no-save', '--ignore-scripts', `azurite@${AZURITE_VERSION}`, `@azure/storage-blob@${STORAGE_BLOB_VERSION}`];
      await runWithRetries('npm', args, { cwd: stage, log, label: 'azure-server' });
      fs.rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
      fs.renameSync(path.join(stage, 'node_modules'), path.join(dir, 'node_modules'));
      (log ?? ((m) => process.stderr.write(`${m}\n`)))(`azure-server: installed Azurite ${AZURITE_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    },
  });
  return dir;
}

/** The installed `@azure/storage-blob` module, for arranging blobs. */
export function blobClientModule() {
  return createRequire(path.join(azuriteDir(), 'package.json'))('@azure/storage-blob');
}

/** Start an empty Azurite blob service on a free loopback port. */
export async function startAzureServer(options = {}) {
  const dir = await installAzureServer();
  const main = path.join(dir, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
  const { proc, port, tmp, dataDir } = await startServer({
    label: 'azure-server',
    prefix: 'redesmyn-azurite-',
    cmd: process.execPath,
    argsFor: (port, dataDir) => [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dataDir, '--silent', '--skipApiVersionCheck', '--disableTelemetry'],
    options,
  });
  const endpoint = `http://127.0.0.1:${port}/${ACCOUNT}`;
  return {
    endpoint,
    account: ACCOUNT,
    accountKey: ACCOUNT_KEY,
    dataDir,
    pid: proc.child.pid,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${ACCOUNT_KEY};BlobEndpoint=${endpoint};`,
    /** object_store's Azure options for this emulator. */
    options: { azure_storage_account_name: ACCOUNT, azure_storage_account_key: ACCOUNT_KEY, azure_storage_endpoint: endpoint, allow_http: 'true' },
    /** The same as AZURE_* variables, for a child process. */
    env: { AZURE_STORAGE_ACCOUNT_NAME: ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY: ACCOUNT_KEY, AZURE_STORAGE_ENDPOINT: endpoint, AZURE_ALLOW_HTTP: 'true' },
    logs: proc.log,
    exited: proc.exited,
    stop: stopper(proc, () => fsp.rm(tmp, { recursive: true, force: true })),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  serveFromCli('azure-server', process.argv.slice(2), installAzureServer, startAzureServer);
}
