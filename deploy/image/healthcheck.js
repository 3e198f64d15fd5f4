// The image's HEALTHCHECK: exit 0 when the server answers ready on
// /v2/health/ready (no shell or curl in the slim image; node does it).
const port = process.env.MLSERVER_HTTP_PORT || '8080';
fetch(`http://127.0.0.1:${port}/v2/health/ready`, { signal: AbortSignal.timeout(2500) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  () => process.exit(1),
);
