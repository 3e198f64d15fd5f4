import { Server, type ServerOptions } from '../src';
import type { Endpoint } from '../src';

/** A server on an ephemeral loopback port with the given endpoints. */
export async function serve(endpoints: Endpoint<any, any>[], options: ServerOptions = {}) {
  const server = new Server({ host: '127.0.0.1', port: 0, workers: 2, ...options });
  for (const e of endpoints) server.register(e);
  await server.serve();
  const url = `http://127.0.0.1:${server.port}`;
  return { server, url };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

/** POST a JSON body (a string is sent as is). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // leave as text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/**
 * Waits until `check` resolves true, asking every `everyMs`; throws after
 * `timeoutMs` (generous by default: Python loads on a loaded two-core CI
 * machine take seconds).
 */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs = 20_000, everyMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`condition not reached in ${timeoutMs} ms`);
}

/** The `buffers` field of the first trace line with `message`. */
export function loggedBuffer(logs: string[], message: string): string | undefined {
  for (const line of logs) {
    try {
      const event = JSON.parse(line);
      if (event.message === message && event.buffers) return String(event.buffers);
    } catch {
      // not a log line
    }
  }
  return undefined;
}
