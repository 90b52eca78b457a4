// Imports run one way: a folder of src/ may import only from its own layer or the layers below it.
// The order is written here and in README ("Layers"); this test keeps the two and the code in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first. */
const LAYERS = ['common', 'libvirt', 'controller', 'simulator', 'api', 'client', 'migration', 'evacuation', 'daemon', 'lab', 'cli', 'bench', 'tools'];

const root = fileURLToPath(new URL('../../../', import.meta.url));
const src = join(root, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function imports(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec?.startsWith('.')) found.push(spec);
  }
  return found;
}

const layerOf = (file: string): string => relative(src, file).split(sep)[0] as string;

test('every folder of src/ has a place in the layer order', () => {
  const folders = readdirSync(src).filter((n) => statSync(join(src, n)).isDirectory());
  assert.deepEqual(folders.filter((f) => !LAYERS.includes(f)), []);
});

test('no import runs against the layer order', () => {
  const against: string[] = [];
  for (const file of tsFiles(src)) {
    const from = layerOf(file);
    for (const spec of imports(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const to = relative(src, target).startsWith('..') ? '(outside src)' : layerOf(target);
      if (LAYERS.indexOf(to) < 0 || LAYERS.indexOf(to) > LAYERS.indexOf(from)) {
        against.push(`${relative(root, file)} (${from}) imports ${spec} (${to})`);
      }
    }
  }
  assert.deepEqual(against, [], `imports against the order ${LAYERS.join(' < ')}`);
});

test('README states the same order', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  assert.ok(readme.includes(LAYERS.map((l) => `\`${l}\``).join(' → ')), 'README: the layer order line');
});
