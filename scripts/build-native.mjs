#!/usr/bin/env node
// `npm run build:native [-- --release]`: builds the addon with napi-rs, then
// the Python bridge library (crates/redesmyn-python-bridge), in the
// project's cargo environment (scripts/cargo-env.mjs). The bridge is copied
// beside the addon, where the addon looks for it when a Python endpoint is
// registered: libredesmyn_python_bridge.so (Linux) / .dylib (macOS).
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { cargoEnv } from './cargo-env.mjs';

const root = join(import.meta.dirname, '..');
const env = cargoEnv();
const extra = process.argv.slice(2);
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
  ...extra,
];
const addon = spawnSync(napi, args, { cwd: root, env, stdio: 'inherit' });
if (addon.status !== 0) process.exit(addon.status ?? 1);

const release = extra.includes('--release') || extra.includes('-r');
const targetIndex = extra.findIndex((a) => a === '--target' || a === '-t');
const target = targetIndex >= 0 ? extra[targetIndex + 1] : undefined;
const cargoArgs = ['build', '-p', 'redesmyn-python-bridge', ...(release ? ['--release'] : []), ...(target ? ['--target', target] : [])];
console.log(`$ cargo ${cargoArgs.join(' ')}`);
const bridge = spawnSync('cargo', cargoArgs, { cwd: root, env, stdio: 'inherit' });
if (bridge.status !== 0) process.exit(bridge.status ?? 1);

const file = process.platform === 'darwin' ? 'libredesmyn_python_bridge.dylib' : 'libredesmyn_python_bridge.so';
const built = join(env.CARGO_TARGET_DIR, ...(target ? [target] : []), release ? 'release' : 'debug', file);
copyFileSync(built, join(root, file));
console.log(`copied ${built} -> ${file}`);
