#!/usr/bin/env node
// Installs the Go tools the tests and the bench use (grpcurl for gRPC
// reflection listings, ghz for gRPC calls, vegeta for open-loop HTTP load) with `go install` from the Go
// module proxy, pinned, into $REDESMYN_GO_BIN, else
// $HOME/.cache/redesmyn-tools/go-bin. Idempotent: a tool already there is
// kept. Prints {"grpcurl": "<path>", "ghz": "<path>"} as JSON on stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const tools = {
  grpcurl: 'github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3',
  ghz: 'github.com/bojand/ghz/cmd/ghz@v0.120.0',
  vegeta: 'github.com/tsenart/vegeta/v12@v12.12.0',
};

export function binDir() {
  return process.env.REDESMYN_GO_BIN ?? join(homedir(), '.cache', 'redesmyn-tools', 'go-bin');
}

/** Installs what is missing of `names` and returns their paths. */
export function ensureGoTools(names = Object.keys(tools)) {
  const dir = binDir();
  mkdirSync(dir, { recursive: true });
  const paths = {};
  for (const name of names) {
    const bin = join(dir, name);
    if (!existsSync(bin)) {
      process.stderr.write(`go-tools: go install ${tools[name]}\n`);
      const r = spawnSync('go', ['install', tools[name]], { env: { ...process.env, GOBIN: dir }, stdio: ['ignore', 2, 2] });
      if (r.status !== 0) throw new Error(`go install ${tools[name]} failed (status ${r.status}); is Go installed?`);
    }
    paths[name] = bin;
  }
  return paths;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(ensureGoTools(process.argv.slice(2).length ? process.argv.slice(2) : undefined)));
}
