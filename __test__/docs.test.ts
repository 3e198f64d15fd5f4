/**
 * The documentation as written: README.md and docs/guides/*.md.
 *
 * - Every ```ts block type-checks as pasted, with the project's TypeScript
 *   (`strict`, no emit), `import ... from 'redesmyn'` resolving to the
 *   package's own source (src/index.ts, as the other suites import it).
 *   Each block is its own module file in a folder under .cache/ in the repo.
 * - A block that is not meant to compile alone (it uses a name defined
 *   elsewhere) says so on the line before it, `<!-- fragment: why -->`; it
 *   must still parse. Fragments are counted, and the blocks found by the
 *   parser are counted against every ```ts fence in the files, so no block
 *   goes unchecked without saying so.
 * - Every ```json block parses.
 * - Every relative link points at a file that exists, and every #anchor at a
 *   heading of its target (GitHub's heading ids).
 * - The README stays a front door: at most 300 lines, the contributor
 *   commands, the quick start, a link to the guides index, which links
 *   every guide.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');


const guidesDir = join(root, 'docs', 'guides');
const docs = ['README.md', ...readdirSync(guidesDir).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/guides/${f}`)];
const text = (doc: string) => readFileSync(join(root, doc), 'utf8');

interface Block {
  doc: string;
  /** 0-based index among the doc's ```ts blocks. */
  index: number;
  /** 1-based line of the doc where the code starts (after the fence). */
  line: number;
  lang: string;
  code: string;
  /** The reason given by a `<!-- fragment: ... -->` marker, if any. */
  fragment?: string;
}

const FENCE = /^(\s*)(```+)\s*([\w-]*)(.*)$/;
const FRAGMENT = /^\s*<!--\s*fragment:\s*(.*?)\s*-->\s*$/;

/** The fenced blocks of a Markdown document, with fragment markers and stray markers. */
function blocks(doc: string): { blocks: Block[]; strayMarkers: number[] } {
  const lines = text(doc).split('\n');
  const out: Block[] = [];
  const strayMarkers: number[] = [];
  const perLang = new Map<string, number>();
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(FENCE);
    if (!open) continue;
    const [, indent, ticks, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = lines[j].match(/^(\s*)(```+)\s*$/);
      if (close && close[2].length >= ticks.length) break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
    }
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const marker = k >= 0 ? lines[k].match(FRAGMENT) : null;
    const norm = lang === 'typescript' ? 'ts' : lang;
    if (marker && norm !== 'ts') strayMarkers.push(k + 1);
    const index = perLang.get(norm) ?? 0;
    perLang.set(norm, index + 1);
    out.push({ doc, index, line: i + 2, lang: norm, code: body.join('\n') + '\n', fragment: marker ? marker[1] : undefined });
    i = j;
  }
  return { blocks: out, strayMarkers };
}

const all = docs.flatMap((d) => blocks(d).blocks);
const tsBlocks = all.filter((b) => b.lang === 'ts');
const full = tsBlocks.filter((b) => b.fragment === undefined);
const fragments = tsBlocks.filter((b) => b.fragment !== undefined);
const label = (b: Block) => `${b.doc}, ts block ${b.index} (line ${b.line})`;

describe('ts blocks', () => {
  let dir: string;
  const files = new Map<string, Block>();
  const errors = new Map<Block, string[]>();
  const elsewhere: string[] = [];

  beforeAll(() => {
    mkdirSync(join(root, '.cache'), { recursive: true });
    dir = mkdtempSync(join(root, '.cache', 'docs-test-'));
    for (const b of full) {
      const file = join(dir, `${b.doc.replace(/[/.]/g, '_')}_${b.index}.ts`);
      writeFileSync(file, b.code);
      files.set(resolve(file), b);
    }
    // tsc --strict --noEmit; unused names are allowed (an example may declare
    // a type or import a class only to show it).
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      // Each block is a module of its own, with or without an import.
      moduleDetection: ts.ModuleDetectionKind.Force,
      lib: ['lib.es2022.d.ts'],
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
      esModuleInterop: true,
      skipLibCheck: true,
      paths: { redesmyn: [join(root, 'src', 'index.ts')] },
    };
    const program = ts.createProgram([...files.keys()], options);
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      const block = d.file ? files.get(resolve(d.file.fileName)) : undefined;
      if (block && d.file && d.start !== undefined) {
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        const list = errors.get(block) ?? [];
        list.push(`${block.doc}:${block.line + line}: TS${d.code} ${message}`);
        errors.set(block, list);
      } else {
        elsewhere.push(`${d.file ? relative(root, d.file.fileName) : '(no file)'}: TS${d.code} ${message}`);
      }
    }
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every ts fence is found, and each is type-checked or marked as a fragment with a reason', () => {
    const fences = docs.reduce((n, d) => n + text(d).split('\n').filter((l) => /^\s*```+\s*(ts|typescript)\b/.test(l)).length, 0);
    expect(tsBlocks.length).toBe(fences);
    expect(full.length + fragments.length).toBe(tsBlocks.length);
    expect(full.length).toBeGreaterThan(0);
    for (const b of fragments) expect(b.fragment, `${label(b)}: a fragment marker needs a reason`).not.toBe('');
    const stray = docs.flatMap((d) => blocks(d).strayMarkers.map((l) => `${d}:${l}`));
    expect(stray, 'fragment markers before blocks that are not ts').toEqual([]);
    console.log(`docs: ${tsBlocks.length} ts blocks, ${full.length} type-checked, ${fragments.length} fragments (parsed only)`);
  });

  it('the type-check reports nothing outside the blocks (the package source, the set-up)', () => {
    expect(elsewhere).toEqual([]);
  });

  it.each(full.map((b) => [label(b), b] as const))('%s type-checks', (_, b) => {
    expect(files.size).toBe(full.length);
    expect(errors.get(b) ?? []).toEqual([]);
  });

  it.each(fragments.map((b) => [label(b), b] as const))('%s (a fragment) parses', (_, b) => {
    const out = ts.transpileModule(b.code, { reportDiagnostics: true, fileName: 'fragment.ts', compilerOptions: { target: ts.ScriptTarget.ES2022 } });
    const found = (out.diagnostics ?? []).map((d) => `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(found).toEqual([]);
  });
});

describe('json blocks', () => {
  const json = all.filter((b) => b.lang === 'json');
  it.each(json.map((b) => [`${b.doc}, json block ${b.index} (line ${b.line})`, b] as const))('%s parses', (_, b) => {
    expect(() => JSON.parse(b.code)).not.toThrow();
  });
});

/** GitHub's id for a heading: rendered text, lower case, punctuation dropped, spaces as '-'; repeats get -1, -2. */
function anchors(doc: string): Set<string> {
  const seen = new Map<string, number>();
  const ids = new Set<string>();
  let fence = false;
  for (const line of readFileSync(doc, 'utf8').split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    const h = !fence && line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/);
    if (!h) continue;
    const rendered = h[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
    const base = rendered.toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  return ids;
}

/** The relative links of a document, outside code blocks and code spans. */
function links(doc: string): { target: string; line: number }[] {
  const out: { target: string; line: number }[] = [];
  let fence = false;
  text(doc)
    .split('\n')
    .forEach((line, i) => {
      if (/^\s*```/.test(line)) {
        fence = !fence;
        return;
      }
      if (fence) return;
      const prose = line.replace(/`[^`]*`/g, '');
      for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1])) out.push({ target: m[1], line: i + 1 });
      }
    });
  return out;
}

describe('links', () => {
  it.each(docs)('every relative link of %s reaches a file (and heading) that exists', (doc) => {
    const found = links(doc);
    if (doc === 'README.md') expect(found.length).toBeGreaterThan(0);
    const broken: string[] = [];
    for (const { target, line } of found) {
      const [path, anchor] = target.split('#');
      const file = path === '' ? join(root, doc) : resolve(dirname(join(root, doc)), decodeURIComponent(path));
      const where = `${doc}:${line}: ${target}`;
      let exists = true;
      try {
        statSync(file);
      } catch {
        exists = false;
      }
      if (!exists) {
        broken.push(`${where} (no such file)`);
        continue;
      }
      if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) broken.push(`${where} (no such heading)`);
    }
    expect(broken).toEqual([]);
  });
});

describe('the README is a front door', () => {
  const readme = text('README.md');

  it('is at most 300 lines', () => {
    expect(readme.trimEnd().split('\n').length).toBeLessThanOrEqual(300);
  });

  it('keeps the install, the two contributor commands and the quick start', () => {
    expect(readme).toContain('npm install redesmyn');
    expect(readme).toMatch(/^npm install && npm start {3}# sets up \.\/\.venv/m);
    expect(readme).toMatch(/^npm test {19}# builds everything and runs every test/m);
    // scripts/pack-install.mjs compiles and runs the first ts block under "## Quick start".
    const quick = readme.split(/^## Quick start\s*$/m)[1]?.match(/```ts\n([\s\S]*?)```/)?.[1];
    expect(quick).toBeDefined();
    expect(quick).toMatch(/port: 8080/);
    expect(quick).toMatch(/from 'redesmyn'/);
  });

  it('links the guides index, which links every guide', () => {
    expect(links('README.md').map((l) => l.target)).toContain('docs/guides/README.md');
    const indexed = new Set(links('docs/guides/README.md').map((l) => l.target.split('#')[0]));
    const guides = readdirSync(guidesDir).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(guides.length).toBeGreaterThanOrEqual(11);
    expect(guides.filter((g) => !indexed.has(g))).toEqual([]);
  });
});
