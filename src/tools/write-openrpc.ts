// Writes docs/openrpc.json from the verb catalog.
import { readFileSync, writeFileSync } from 'node:fs';
import { buildOpenRpc } from '../api/openrpc.js';

const root = new URL('../../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
writeFileSync(new URL('docs/openrpc.json', root), `${JSON.stringify(buildOpenRpc(pkg.version), null, 2)}\n`);
console.log('wrote docs/openrpc.json');
