// A text model that streams: each prompt's words, one per step, with a delay
// between steps. Shared by examples/streaming/server.ts and the main example
// (examples/iris/server.ts serves it as the V2 model `text-stream-model`).
import { Endpoint, Schema, type Batch } from 'redesmyn';

export const Prompt = new Schema({ prompt: Schema.str() });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Yields `{ chunks, done }` steps: `chunks` has one value per row of the
 * batch (`null` where a row has nothing this step), `done` the rows that end
 * after it. Rows of several clients share a call; each gets its own words.
 * Words after the first keep their leading space, as text generators send
 * tokens, so a row's chunks joined give back its text.
 */
export async function* words(batch: Batch<(typeof Prompt)['fields']>, delayMs: number) {
  const rows = batch.columns.prompt.map((prompt) => prompt.split(/\s+/).filter(Boolean));
  const longest = Math.max(0, ...rows.map((words) => words.length));
  for (let step = 0; step < longest; step++) {
    await sleep(delayMs);
    yield {
      chunks: rows.map((words) => (step < words.length ? (step === 0 ? '' : ' ') + words[step] : null)),
      done: rows.flatMap((words, i) => (words.length === step + 1 ? [i] : [])),
    };
  }
}

/** The TypeScript text model as a streaming endpoint. */
export function textEndpoint(path: string, name: string, delayMs: number) {
  return new Endpoint({
    path,
    name,
    schema: Prompt,
    stream: true,
    batch: { maxSize: 32, maxDelayMs: 5 },
    handler: (batch) => words(batch, delayMs),
  });
}
