// One shape for every object store the tests run against, each a real
// emulator started by the project's scripts: S3 (versitygw), Google Cloud
// Storage (fake-gcs-server), Azure Blob (Azurite) and a plain static HTTP
// server. A test arranges objects with the store's own client (the AWS SDK,
// the GCS JSON API, the Azure SDK, files) and points redesmyn at `url()`
// with `options` (or `env`, the cloud's standard variables).
//
//   const store = await startStore('gs');
//   await store.put('models/iris/1/model.joblib', bytes);
//   new ObjectStoreClient({ url: store.url('models'), options: store.options, pathTemplate })
//   await store.stop();

// @ts-ignore -- plain ES modules without type declarations
import { blobClientModule, startAzureServer } from '../../scripts/azure-server.mjs';
// @ts-ignore
import { startGcsServer } from '../../scripts/gcs-server.mjs';
// @ts-ignore
import { startHttpServer } from '../../scripts/http-server.mjs';
import { createBucket, getObject, putObject, startS3 } from './s3';

export type StoreKind = 's3' | 'gs' | 'az' | 'http';

export interface TestStore {
  kind: StoreKind;
  /** The bucket (container) every object of the test is in. */
  bucket: string;
  /** The store URL of `prefix` in the bucket, e.g. gs://models/repo. */
  url(prefix?: string): string;
  /** object_store options that reach the emulator with valid credentials. */
  options: Record<string, string>;
  /** The same as the cloud's standard environment variables, for a child process. */
  env: Record<string, string>;
  /** Options with a wrong secret (S3 and Azure check signatures), or none at all (GCS: the emulator takes any). */
  wrongKey?: Record<string, string>;
  put(key: string, body: string | Buffer): Promise<void>;
  get(key: string): Promise<Buffer>;
  /** Stop the emulator (cutting downloads in flight); idempotent. */
  stop(): Promise<void>;
  /** The static HTTP server's handle (http only): answer requests yourself, see what was asked. */
  web?: { intercept?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => boolean; requests: string[] };
}

const BUCKET = 'models';

export async function startStore(kind: StoreKind): Promise<TestStore> {
  const join = (prefix = '') => (prefix ? `/${prefix}` : '');
  switch (kind) {
    case 's3': {
      const s3 = await startS3();
      await createBucket(s3, BUCKET);
      const options = {
        aws_endpoint: s3.endpoint,
        aws_region: s3.region,
        aws_access_key_id: s3.accessKeyId,
        aws_secret_access_key: s3.secretAccessKey,
        aws_virtual_hosted_style_request: 'false',
        allow_http: 'true',
      };
      return {
        kind,
        bucket: BUCKET,
        url: (prefix) => `s3://${BUCKET}${join(prefix)}`,
        options,
        env: s3.env,
        wrongKey: { ...options, aws_secret_access_key: 'not-the-secret' },
        put: async (key, body) => void (await putObject(s3, BUCKET, key, body)),
        get: async (key) => (await getObject(s3, BUCKET, key)).body,
        stop: () => s3.stop(),
      };
    }
    case 'gs': {
      const gcs = await startGcsServer();
      const made = await fetch(`${gcs.endpoint}/storage/v1/b`, { method: 'POST', body: JSON.stringify({ name: BUCKET }), headers: { 'content-type': 'application/json' } });
      if (!made.ok) throw new Error(`fake-gcs-server: creating the bucket: ${made.status} ${await made.text()}`);
      return {
        kind,
        bucket: BUCKET,
        url: (prefix) => `gs://${BUCKET}${join(prefix)}`,
        // A service account key that points at the emulator and sends no OAuth token.
        options: gcs.options,
        env: { GOOGLE_SERVICE_ACCOUNT_KEY: gcs.options.google_service_account_key, GOOGLE_ALLOW_HTTP: 'true' },
        wrongKey: { google_base_url: gcs.endpoint, allow_http: 'true' },
        async put(key, body) {
          const res = await fetch(`${gcs.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=${encodeURIComponent(key)}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body) });
          if (!res.ok) throw new Error(`fake-gcs-server: upload ${key}: ${res.status} ${await res.text()}`);
        },
        async get(key) {
          const res = await fetch(`${gcs.endpoint}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(key)}?alt=media`);
          if (!res.ok) throw new Error(`fake-gcs-server: get ${key}: ${res.status}`);
          return Buffer.from(await res.arrayBuffer());
        },
        stop: () => gcs.stop(),
      };
    }
    case 'az': {
      const az = await startAzureServer();
      const { BlobServiceClient } = blobClientModule();
      const container = BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient(BUCKET);
      await container.create();
      return {
        kind,
        bucket: BUCKET,
        url: (prefix) => `az://${BUCKET}${join(prefix)}`,
        options: az.options,
        env: az.env,
        wrongKey: { ...az.options, azure_storage_account_key: Buffer.from('not the key of the account').toString('base64') },
        async put(key, body) {
          const bytes = typeof body === 'string' ? Buffer.from(body) : body;
          await container.getBlockBlobClient(key).upload(bytes, bytes.length);
        },
        get: async (key) => container.getBlockBlobClient(key).downloadToBuffer(),
        stop: () => az.stop(),
      };
    }
    case 'http': {
      const web = await startHttpServer();
      return {
        kind,
        bucket: BUCKET,
        url: (prefix) => `${web.url}/${BUCKET}${join(prefix)}`,
        options: { allow_http: 'true' },
        env: {},
        put: async (key, body) => void web.put(`${BUCKET}/${key}`, body),
        async get(key) {
          const res = await fetch(`${web.url}/${BUCKET}/${key}`);
          if (!res.ok) throw new Error(`http-server: get ${key}: ${res.status}`);
          return Buffer.from(await res.arrayBuffer());
        },
        stop: () => web.stop(),
        web,
      };
    }
  }
}
