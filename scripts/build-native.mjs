#!/usr/bin/env node
// `npm run build:native [-- --release]`: builds the addon with napi-rs in
// the project's cargo environment (scripts/cargo-env.mjs).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { cargoEnv } from './cargo-env.mjs';

const root = join(import.meta.dirname, '..');
const napi = join(root, 'node_modules', '.bin', 'napi');
const args = [
  'build',
  '--platform',
  '--manifest-path',
  'crates/redesmyn-node/Cargo.toml',
  '--output-dir',
  '.',
  '--js',
  'binding.js',
  '--dts',
  'binding.d.ts',
  ...process.argv.slice(2),
];
const result = spawnSync(napi, args, { cwd: root, env: cargoEnv(), stdio: 'inherit' });
process.exit(result.status ?? 1);
