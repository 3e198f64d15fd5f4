// The image's HEALTHCHECK: exit 0 when the server answers ready on
// /v2/health/ready (no shell or curl in the slim image; node does it).
// The port is the server's own: its --http_port/--port argument, else
// MLSERVER_HTTP_PORT, else 8080.
const { readdirSync, readFileSync } = require('node:fs');

function serverPort() {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    let args;
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!args.some((a) => a.endsWith('/redesmyn/dist/cli.js')) || !args.includes('serve')) continue;
    for (let i = args.length - 1; i >= 0; i--) {
      const m = /^--(?:http_port|port)(?:=(.*))?$/.exec(args[i]);
      if (m) return m[1] ?? args[i + 1];
    }
    // The server's environment, when it was given there.
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('MLSERVER_HTTP_PORT='));
      if (env) return env.slice('MLSERVER_HTTP_PORT='.length);
    } catch {}
  }
  return process.env.MLSERVER_HTTP_PORT || '8080';
}

fetch(`http://127.0.0.1:${serverPort()}/v2/health/ready`, { signal: AbortSignal.timeout(2500) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  () => process.exit(1),
);
