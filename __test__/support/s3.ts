// Helpers for suites that need S3-compatible object storage: a real server
// (versitygw, see scripts/s3-server.mjs) on a loopback port, and a few calls
// through the AWS SDK to arrange the objects a test reads.
//
//   const s3 = await startS3();               // in beforeAll
//   await createBucket(s3, 'models');
//   const { etag } = await putObject(s3, 'models', 'iris/r1/m1/model.joblib', bytes);
//   ... point the code under test at s3.endpoint / s3.env ...
//   await s3.stop();                          // in afterAll

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
// @ts-ignore -- a plain ES module without type declarations; its shape is S3ServerConfig below.
import { startS3Server } from '../../scripts/s3-server.mjs';

// The SDK warns once per process that later releases will need Node 22; the
// version pinned in package.json runs on Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3ServerConfig {
  /** e.g. http://127.0.0.1:40123; requests are path-style: /{bucket}/{key}. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The server's data folder: one sub-folder per bucket, one file per object. */
  dataDir: string;
  pid: number;
  /** AWS_* variables for object_store's AmazonS3Builder::from_env() in a child process. */
  env: Record<string, string>;
  /** The server's own output so far, for a failing test's message. */
  logs(): string;
}

export interface S3 extends S3ServerConfig {
  /** An SDK client signed with the server's credentials, path-style. */
  client: S3Client;
  /** Kill the server and remove its temporary data; idempotent. */
  stop(): Promise<void>;
}

/** Anything the helpers accept: the handle from startS3() or a bare client. */
export type S3Like = S3 | S3Client;

export interface StartS3Options {
  /** Keep the data in this folder (kept on stop) instead of a fresh temporary one. */
  dataDir?: string;
  /** Listen on this port (to start a stopped server again where its clients expect it). */
  port?: number;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** Start a fresh, empty server. The first call on a machine may build it (minutes): call it in beforeAll. */
export async function startS3(options: StartS3Options = {}): Promise<S3> {
  const server = await startS3Server(options);
  const client = s3Client(server);
  return {
    ...server,
    client,
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}

/** A new SDK client for a server's config (for example one with other credentials). */
export function s3Client(config: Pick<S3ServerConfig, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: true,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    maxAttempts: 1, // a local server: a failure is a finding, not a network blip
  });
}

function clientOf(s3: S3Like): S3Client {
  return s3 instanceof S3Client ? s3 : s3.client;
}

export async function createBucket(s3: S3Like, name: string): Promise<void> {
  await clientOf(s3).send(new CreateBucketCommand({ Bucket: name }));
}

export interface PutResult {
  /** As the server sends it, quoted: "\"5d41402abc4b2a76b9719d911017c592\"" (hex MD5 of the body for a single PUT). */
  etag: string;
}

export async function putObject(s3: S3Like, bucket: string, key: string, body: Buffer | Uint8Array | string): Promise<PutResult> {
  const out = await clientOf(s3).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  return { etag: out.ETag ?? '' };
}

export async function deleteObject(s3: S3Like, bucket: string, key: string): Promise<void> {
  await clientOf(s3).send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

export interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified?: Date;
  contentLength?: number;
}

/** A signed GET of the whole object. */
export async function getObject(s3: S3Like, bucket: string, key: string): Promise<StoredObject> {
  const out = await clientOf(s3).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await out.Body!.transformToByteArray();
  return { body: Buffer.from(bytes), etag: out.ETag ?? '', lastModified: out.LastModified, contentLength: out.ContentLength };
}

/** HEAD: the object's ETag, Last-Modified and size, or undefined when there is no such key. */
export async function headObject(s3: S3Like, bucket: string, key: string): Promise<Omit<StoredObject, 'body'> | undefined> {
  try {
    const out = await clientOf(s3).send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { etag: out.ETag ?? '', lastModified: out.LastModified, contentLength: out.ContentLength };
  } catch (e: any) {
    if (e?.$metadata?.httpStatusCode === 404) return undefined;
    throw e;
  }
}

/** Every key under a prefix (ListObjectsV2, following continuation tokens), in the server's (lexicographic) order. */
export async function listKeys(s3: S3Like, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await clientOf(s3).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys;
}
