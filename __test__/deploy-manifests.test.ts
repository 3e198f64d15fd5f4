// The manifests under deploy/ checked against the real API types, not by
// eye: the kserve-redesmyn ClusterServingRuntime, the InferenceService
// examples and the Indexed Job decode strictly into kserve's and
// Kubernetes' Go types (deploy/check), the Helm chart passes Helm's own
// `lint --strict`, and what `helm template` renders (several value sets)
// decodes the same way. Tools come from scripts/deploy-tools.mjs (the Go
// module proxy, cached outside the clone).
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDeployTools } from '../scripts/deploy-tools.mjs';

const run = promisify(execFile);
const root = join(__dirname, '..');
const chart = join(root, 'deploy', 'helm', 'redesmyn');
let tools: { helm: string; check: string };
let scratch: string;

/** Runs the checker; resolves with its exit code and output (stdin: `input`). */
function check(args: string[], input?: string): { code: number | null; out: string } {
  const r = spawnSync(tools.check, args, { input, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

async function template(...set: string[]): Promise<string> {
  const { stdout } = await run(tools.helm, ['template', 'rel', chart, '--namespace', 'models', ...set.flatMap((s) => ['--set', s])]);
  return stdout;
}

/** The kinds of the documents of a YAML stream, in order. */
function kinds(yaml: string): string[] {
  return [...yaml.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
}

beforeAll(() => {
  tools = ensureDeployTools();
  scratch = mkdtempSync(join(tmpdir(), 'redesmyn-deploy-'));
}, 1_200_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('KServe manifests decode strictly into the kserve and Kubernetes types', () => {
  it('the ClusterServingRuntime, every InferenceService and the Indexed Job pass', () => {
    const r = check([join(root, 'deploy', 'kserve'), join(root, 'deploy', 'job')]);
    expect(r.out).toContain('8 objects checked, 0 problems');
    expect(r.code).toBe(0);
  });

  it('there is one InferenceService per model format the runtime lists', () => {
    const runtime = readFileSync(join(root, 'deploy', 'kserve', 'cluster-serving-runtime.yaml'), 'utf8');
    const block = runtime.slice(runtime.indexOf('supportedModelFormats:'), runtime.indexOf('protocolVersions:'));
    const formats = [...block.matchAll(/^ {4}- name: (\w+)$/gm)].map((m) => m[1]);
    expect(formats).toEqual(['sklearn', 'xgboost', 'lightgbm', 'onnx', 'tensorflow', 'mlflow']);
    for (const format of formats) {
      const isvc = readFileSync(join(root, 'deploy', 'kserve', 'inferenceservices', `${format}.yaml`), 'utf8');
      expect(isvc).toMatch(new RegExp(`modelFormat:\\n\\s+name: ${format}\\n`));
      expect(isvc).toContain('runtime: kserve-redesmyn');
    }
  });

  it('a field the type lacks fails, naming the field and the file', () => {
    const bad = join(scratch, 'typo.yaml');
    writeFileSync(bad, readFileSync(join(root, 'deploy', 'kserve', 'inferenceservices', 'sklearn.yaml'), 'utf8').replace('storageUri:', 'storageUrl:'));
    const r = check([bad]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('typo.yaml');
    expect(r.out).toContain('unknown field "storageUrl"');
  });

  it('a runtime without the restricted security context or V2 probes fails', () => {
    const bad = join(scratch, 'runtime.yaml');
    writeFileSync(
      bad,
      readFileSync(join(root, 'deploy', 'kserve', 'cluster-serving-runtime.yaml'), 'utf8')
        .replace('readOnlyRootFilesystem: true', 'readOnlyRootFilesystem: false')
        .replace('path: /v2/health/live', 'path: /healthz')
        .replace('    - grpc-v2\n', ''),
    );
    const r = check([bad]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('readOnlyRootFilesystem must be true');
    expect(r.out).toContain('livenessProbe path is "/healthz", expected "/v2/health/live"');
    expect(r.out).toContain('protocolVersions lacks "grpc-v2"');
  });

  it('an unknown kind fails rather than passing unchecked', () => {
    const r = check(['-'], 'apiVersion: v1\nkind: Podd\nmetadata:\n  name: x\n');
    expect(r.code).toBe(1);
    expect(r.out).toContain('unknown apiVersion/kind "v1"/"Podd"');
  });
});

describe('the Helm chart', () => {
  it('passes helm lint --strict', async () => {
    const { stdout } = await run(tools.helm, ['lint', '--strict', chart]);
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('renders a Deployment, a Service, an HPA, a PDB and a PVC that decode strictly', async () => {
    const out = await template();
    expect(kinds(out).sort()).toEqual(['Deployment', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Service']);
    const r = check(['-'], out);
    expect(r.out).toContain('5 objects checked, 0 problems');
    // gRPC on a port named so h2c is used; the model volume read-only; the drain and grace period set.
    expect(out).toMatch(/- name: grpc\n\s+port: 8081\n\s+targetPort: grpc\n\s+protocol: TCP\n\s+appProtocol: kubernetes.io\/h2c/);
    expect(out).toMatch(/mountPath: \/mnt\/models\n\s+readOnly: true/);
    expect(out).toContain('terminationGracePeriodSeconds: 30');
    expect(out).toMatch(/name: REDESMYN_DRAIN_SECONDS\n\s+value: "5"/);
  });

  it('renders the init-container model volume and a ServiceMonitor that decode strictly', async () => {
    const out = await template('models.source=init', 'serviceMonitor.enabled=true', 'autoscaling.enabled=false', 'model.format=xgboost', 'model.name=iris');
    expect(kinds(out).sort()).toEqual(['Deployment', 'PodDisruptionBudget', 'Service', 'ServiceMonitor']);
    expect(out).toContain('initContainers:');
    expect(out).toContain('- --model_format=xgboost');
    expect(out).toContain('replicas: 2');
    const r = check(['-'], out);
    expect(r.out).toContain('4 objects checked, 0 problems');
    expect(r.code).toBe(0);
  });

  it('an existing claim is used as it is, not created', async () => {
    const out = await template('models.pvc.existingClaim=shared-models');
    expect(kinds(out)).not.toContain('PersistentVolumeClaim');
    expect(out).toContain('claimName: shared-models');
    expect(check(['-'], out).code).toBe(0);
  });

  it('a bad model source fails the render with a clear message', async () => {
    await expect(template('models.source=nfs')).rejects.toThrow(/models.source must be pvc or init, got "nfs"/);
  });
});
