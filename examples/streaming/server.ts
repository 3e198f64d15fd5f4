// Streaming predictions: a text model that answers each prompt word by word,
// in TypeScript (/generate/ts) and in Python (/generate/py, text_model.py).
//
//   npx tsx examples/streaming/server.ts          # WORD_DELAY_MS=100 for faster words
//   curl -N localhost:8080/generate/ts -H 'content-type: application/json' \
//        -H 'accept: text/event-stream' -d '{"prompt": "the quick brown fox"}'
//
// Each word is one Server-Sent Event, `data: {"row":0,"prediction":"the"}`,
// and the row's end is `data: {"row":0,"done":true}`.
import { Endpoint, Server, py } from 'redesmyn';
import { Prompt, textEndpoint } from './text-model';

const delayMs = Number(process.env.WORD_DELAY_MS ?? 500);
process.env.WORD_DELAY_MS = String(delayMs); // text_model.py reads it too

const server = new Server({
  host: process.env.HOST ?? '127.0.0.1',
  port: Number(process.env.PORT ?? 8080),
  python: { venv: './.venv', path: ['./examples/streaming'] },
});
server.register(textEndpoint('/generate/ts', 'text-ts', delayMs));
server.register(
  new Endpoint({
    path: '/generate/py',
    name: 'text-py',
    schema: Prompt,
    stream: true,
    batch: { maxSize: 32, maxDelayMs: 5 },
    handler: py.handler('text_model:generate'),
  }),
);
server.serve().then(() => console.log(`redesmyn streaming example on http://127.0.0.1:${server.port}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop());
}
