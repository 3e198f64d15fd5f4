/** The server: endpoints in, HTTP out. */
import { resolve } from 'node:path';
import { NativeServer } from '../binding';
import type { Endpoint } from './endpoint';
import { PythonHandler, type PythonOptions } from './python';
import type { Fields } from './schema';

export interface ServerOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one, see `server.port`). */
  port?: number;
  /** HTTP worker threads (default: one per CPU). */
  workers?: number;
  /** Largest request body in bytes (default 8 MiB); larger bodies get 413. */
  bodyLimit?: number;
  /** How long `stop()` waits for open connections (default 10 000 ms). */
  shutdownTimeoutMs?: number;
  /** The Python environment for Python handlers (the interpreter starts only if one is registered). */
  python?: PythonOptions;
}

export class Server {
  readonly #native: NativeServer;
  readonly #endpoints: Endpoint<Fields, string>[] = [];
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(options: ServerOptions = {}) {
    this.#native = new NativeServer({
      host: options.host,
      port: options.port,
      workers: options.workers,
      bodyLimit: options.bodyLimit,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      python: options.python && {
        venv: options.python.venv === undefined ? undefined : resolve(options.python.venv),
        executable: options.python.executable === undefined ? undefined : resolve(options.python.executable),
        path: options.python.path?.map((p) => resolve(p)),
      },
    });
  }

  /** Adds an endpoint. Call before `serve()`. */
  register<F extends Fields, P extends string>(endpoint: Endpoint<F, P>): this {
    const spec = { path: endpoint.path, fields: endpoint.schema.toSpec(), batch: endpoint.batch };
    if (endpoint.handler instanceof PythonHandler) {
      this.#native.registerPython(spec, endpoint.handler.target);
    } else {
      this.#native.register(spec, endpoint.nativeHandler());
    }
    this.#endpoints.push(endpoint as unknown as Endpoint<Fields, string>);
    return this;
  }

  /** Starts listening; resolves once the port is bound. */
  async serve(): Promise<void> {
    await this.#native.serve();
    // Like a listening socket, a serving server keeps Node running.
    this.#keepAlive = setInterval(() => {}, 1 << 30);
  }

  /** Stops gracefully: every accepted request is answered, then Node may exit. */
  async stop(): Promise<void> {
    try {
      await this.#native.stop();
    } finally {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /** The bound port (after `serve()`). */
  get port(): number {
    const port = this.#native.port;
    if (port === null || port === undefined) throw new Error('the server is not serving yet');
    return port;
  }

  /** The endpoints registered so far. */
  get endpoints(): readonly Endpoint<Fields, string>[] {
    return this.#endpoints;
  }
}
