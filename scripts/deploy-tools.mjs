#!/usr/bin/env node
// `node scripts/deploy-tools.mjs`: the tools that check deploy/ — Helm's
// CLI (`go install` of helm.sh/helm/v3, pinned) and the manifest checker
// (deploy/check, a Go program that decodes manifests strictly into
// Kubernetes' and KServe's API types) — built from the Go module proxy into
// $REDESMYN_GO_BIN, else $HOME/.cache/redesmyn-tools/go-bin. Idempotent:
// helm is kept once there; the checker is rebuilt only when its sources
// change (the binary's name carries their hash). Prints
// {"helm": "<path>", "check": "<path>"} as JSON on stdout.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { binDir } from './go-tools.mjs';

const root = join(import.meta.dirname, '..');
export const HELM = 'helm.sh/helm/v3/cmd/helm@v3.21.4';
const CHECK = join(root, 'deploy', 'check');

function go(args, options) {
  process.stderr.write(`deploy-tools: go ${args.join(' ')}\n`);
  const r = spawnSync('nice', ['-n', '10', 'go', ...args], { stdio: ['ignore', 2, 2], ...options });
  if (r.status !== 0) throw new Error(`go ${args.join(' ')} failed (status ${r.status}); is Go installed?`);
}

export function ensureDeployTools() {
  const dir = binDir();
  mkdirSync(dir, { recursive: true });
  const helm = join(dir, 'helm-v3.21.4');
  if (!existsSync(helm)) {
    const tmp = join(dir, '.helm-build');
    go(['install', HELM], { env: { ...process.env, GOBIN: tmp } });
    spawnSync('mv', [join(tmp, 'helm'), helm]);
  }
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(CHECK, f)));
  const check = join(dir, `deploy-check-${hash.digest('hex').slice(0, 12)}`);
  if (!existsSync(check)) go(['build', '-o', check, '.'], { cwd: CHECK });
  return { helm, check };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(ensureDeployTools()));
  } catch (error) {
    process.stderr.write(`deploy-tools: ${error.message}\n`);
    process.exit(1);
  }
}
