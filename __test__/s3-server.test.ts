// The S3 test server and its helpers work: a real server starts, takes a
// bucket and objects, serves them back through signed requests, and stops.
import { existsSync } from 'node:fs';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBucket, deleteObject, getObject, headObject, listKeys, putObject, s3Client, startS3, type S3 } from './support/s3';

const md5Etag = (hex: string) => `"${hex}"`;

describe('S3 test server', () => {
  let s3: S3;

  // The first run on a machine may build the server: that is CI's `install` step's job, but allow for it.
  beforeAll(async () => {
    s3 = await startS3();
    await createBucket(s3, 'models');
  }, 20 * 60_000);

  afterAll(async () => {
    await s3?.stop();
  });

  it('listens on loopback with path-style config', () => {
    expect(s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s3.region).toBe('us-east-1');
    expect(s3.env).toMatchObject({ AWS_ENDPOINT: s3.endpoint, AWS_ALLOW_HTTP: 'true', AWS_VIRTUAL_HOSTED_STYLE_REQUEST: 'false' });
  });

  it('stores an object and serves it back through a signed GET', async () => {
    const { etag } = await putObject(s3, 'models', 'iris/r1/m1/model.joblib', 'hello');
    expect(etag).toBe(md5Etag('5d41402abc4b2a76b9719d911017c592')); // MD5 of "hello", quoted

    const got = await s3.client.send(new GetObjectCommand({ Bucket: 'models', Key: 'iris/r1/m1/model.joblib' }));
    expect(got.$metadata.httpStatusCode).toBe(200);
    expect(await got.Body!.transformToString()).toBe('hello');
    expect(got.ETag).toBe(etag);
    expect(got.ContentLength).toBe(5);
    expect(got.LastModified).toBeInstanceOf(Date);
  });

  it('stores binary bodies byte for byte', async () => {
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
    await putObject(s3, 'models', 'blobs/bin', bytes);
    const got = await getObject(s3, 'models', 'blobs/bin');
    expect(got.contentLength).toBe(bytes.length);
    expect(got.body.equals(bytes)).toBe(true);
  });

  it('changes the ETag when an object is overwritten', async () => {
    const first = await putObject(s3, 'models', 'iris/r1/m1/weights.bin', 'v1');
    const head1 = await headObject(s3, 'models', 'iris/r1/m1/weights.bin');
    expect(head1?.etag).toBe(first.etag);

    const second = await putObject(s3, 'models', 'iris/r1/m1/weights.bin', 'v2');
    expect(second.etag).not.toBe(first.etag);
    const head2 = await headObject(s3, 'models', 'iris/r1/m1/weights.bin');
    expect(head2?.etag).toBe(second.etag);
    expect((await getObject(s3, 'models', 'iris/r1/m1/weights.bin')).body.toString()).toBe('v2');
  });

  it('answers conditional GETs on the ETag', async () => {
    const { etag } = await putObject(s3, 'models', 'cond/a', 'abc');
    const notModified = await s3.client
      .send(new GetObjectCommand({ Bucket: 'models', Key: 'cond/a', IfNoneMatch: etag }))
      .then((r) => r.$metadata.httpStatusCode, (e) => e.$metadata?.httpStatusCode);
    expect(notModified).toBe(304);
    const changed = await s3.client.send(new GetObjectCommand({ Bucket: 'models', Key: 'cond/a', IfNoneMatch: '"0"' }));
    expect(await changed.Body!.transformToString()).toBe('abc');
  });

  it('lists keys by prefix', async () => {
    await putObject(s3, 'models', 'iris/r1/m2/model.joblib', 'x');
    await putObject(s3, 'models', 'iris/r2/m1/model.joblib', 'y');
    await putObject(s3, 'models', 'other/model.joblib', 'z');
    expect(await listKeys(s3, 'models', 'iris/r1/')).toEqual([
      'iris/r1/m1/model.joblib',
      'iris/r1/m1/weights.bin',
      'iris/r1/m2/model.joblib',
    ]);
    expect(await listKeys(s3, 'models', 'other/')).toEqual(['other/model.joblib']);
    expect(await listKeys(s3, 'models', 'nothing/')).toEqual([]);
  });

  it('deletes objects, then reports them missing', async () => {
    await putObject(s3, 'models', 'tmp/gone', 'bye');
    await deleteObject(s3, 'models', 'tmp/gone');
    expect(await headObject(s3, 'models', 'tmp/gone')).toBeUndefined();
    const status = await s3.client
      .send(new GetObjectCommand({ Bucket: 'models', Key: 'tmp/gone' }))
      .then(() => 200, (e) => `${e.$metadata?.httpStatusCode} ${e.name}`);
    expect(status).toBe('404 NoSuchKey');
  });

  it('checks signatures', async () => {
    const wrong = s3Client({ ...s3, secretAccessKey: 'not-the-secret' });
    const status = await wrong
      .send(new HeadObjectCommand({ Bucket: 'models', Key: 'iris/r1/m1/model.joblib' }))
      .then(() => 200, (e) => e.$metadata?.httpStatusCode);
    wrong.destroy();
    expect(status).toBe(403);
    const anonymous = await fetch(`${s3.endpoint}/models/iris/r1/m1/model.joblib`);
    expect(anonymous.status).toBe(403);
  });

  it('stops: the port closes and the temporary data goes', async () => {
    const other = await startS3();
    await createBucket(other, 'scratch');
    await putObject(other, 'scratch', 'k', 'v');
    expect(existsSync(other.dataDir)).toBe(true);
    await other.stop();
    await other.stop(); // idempotent
    expect(existsSync(other.dataDir)).toBe(false);
    await expect(fetch(other.endpoint)).rejects.toThrow();
    // the first server is unaffected
    expect((await getObject(s3, 'models', 'other/model.joblib')).body.toString()).toBe('z');
  });
});
