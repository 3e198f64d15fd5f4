// The main example: iris species predicted by a scikit-learn model in a
// Python handler, in the same process as this Node server.
//
//   npm start                      # or: PORT=9000 npm start
//   curl -s localhost:8080/predictions/iris -H 'content-type: application/json' \
//        -d '[{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]'
//   curl -s localhost:8080/predictions/iris/1/2 -H 'content-type: application/json' \
//        -d '[{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}]'
//
// The same models speak the Open Inference Protocol (KServe V2) over REST on
// PORT and over gRPC on GRPC_PORT (default 8081): the V2 model `iris`
// answers class indices, `iris-variants` the species by the model that its
// `parameters` {"run_id", "model_id"} select (see the README's "V2 / gRPC").
//
// A streaming text model is served too, as the V2 model `text-stream-model`
// (MLServer's name for it) and at `/generate/text`: each word of the prompt
// is one Server-Sent Event, WORD_DELAY_MS apart (default 500):
//   curl -N localhost:8080/generate/text -H 'content-type: application/json' \
//        -H 'accept: text/event-stream' -d '{"prompt": "hello streaming world"}'
import { CacheConfig, Endpoint, FsClient, Schema, Server, py } from 'redesmyn';
import { textEndpoint } from '../streaming/text-model';

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

const iris = new Endpoint({
  path: '/predictions/iris',
  schema: Iris,
  batch: { maxSize: 64 },
  handler: py.handler('iris_handlers:predict'), // def predict(df: pl.DataFrame) -> pl.Series
});

// Model variants chosen by the URL: /predictions/iris/1/1 is a logistic
// regression, /predictions/iris/1/2 a random forest; other values answer 404.
const irisVariants = new Endpoint({
  path: '/predictions/iris/{run_id}/{model_id}',
  schema: Iris,
  cache: new CacheConfig({
    client: new FsClient({ basePath: './examples/iris/models', pathTemplate: 'iris/{run_id}/{model_id}/model.joblib' }),
    loadModel: py.loader('joblib:load'),
    maxSize: 8,
    refresh: { intervalMs: 30_000 },
  }),
  handler: py.handler('iris_handlers:predict_with'), // def predict_with(model, df) -> pl.Series
  name: 'iris-variants', // V2: /v2/models/iris-variants/infer with "parameters": {"run_id", "model_id"}
});

// V2 model `iris`: class indices (0 setosa, 1 versicolor, 2 virginica) as
// KServe's and MLServer's sklearn servers answer, output `output-0`.
const irisV2 = new Endpoint({
  path: '/predictions/iris/classes',
  name: 'iris',
  schema: Iris,
  batch: { maxSize: 64 },
  handler: py.handler('iris_handlers:predict_class'), // def predict_class(df) -> pl.Series of int64
});

// A TypeScript endpoint on the same server.
const sum = new Endpoint({
  path: '/predictions/sum',
  schema: new Schema({ a: Schema.f64(), b: Schema.f64() }),
  handler: (batch) => Array.from(batch.columns.a, (a, i) => a + batch.columns.b[i]),
});

// Streaming: examples/streaming/text-model.ts, word by word.
const textStream = textEndpoint('/generate/text', 'text-stream-model', Number(process.env.WORD_DELAY_MS ?? 500));

const host = process.env.HOST ?? '127.0.0.1';
const server = new Server({
  host,
  port: Number(process.env.PORT ?? 8080),
  grpcPort: Number(process.env.GRPC_PORT ?? 8081),
  python: { venv: './.venv', path: ['./examples/iris'] },
});
server.register(iris).register(irisVariants).register(irisV2).register(sum).register(textStream);
server.serve().then(() => console.log(`redesmyn iris example on http://${host}:${server.port}, gRPC on ${host}:${server.grpcPort}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop());
}
