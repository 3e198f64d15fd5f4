// The built CLI (dist/cli.js) as a user runs it: a child process whose
// "serving" log line says its port.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const cli = join(__dirname, '..', '..', 'dist', 'cli.js');

export interface ServedCli {
  child: ChildProcess;
  /** http://127.0.0.1:<port> */
  url: string;
  /** Its gRPC address, when the "serving" line gives a grpcPort. */
  grpc: string;
  /** Its output so far (stdout and stderr). */
  log: () => string;
  exit: Promise<number | null>;
}

/** An error of a CLI that exited before serving: its exit code and output. */
export class ExitedBeforeServing extends Error {
  constructor(
    readonly code: number | null,
    readonly out: string,
  ) {
    super(`redesmyn serve exited (${code}) before serving:\n${out}`);
  }
}

/** Starts `node dist/cli.js ...args` with `env` (default: this process's); resolves once it logs "serving". */
export function serveCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServedCli> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return new Promise((done, fail) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"message":"serving"'));
      if (line) {
        const { port, grpcPort } = JSON.parse(line) as { port: number; grpcPort?: number };
        done({ child, url: `http://127.0.0.1:${port}`, grpc: `127.0.0.1:${grpcPort}`, log: () => out, exit });
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    void exit.then((code) => fail(new ExitedBeforeServing(code, out)));
  });
}
