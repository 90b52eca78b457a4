// Which libvirt URIs a migration may be sent to. The source libvirtd opens the destination URI
// itself (peer-to-peer), with root's rights: a transport like qemu+ext with command= runs a program,
// and socket= can point anywhere. So a URI, whether a client gave it or a destination agent
// returned it, must match an allow-list; the refusal names the part that is not allowed.
import { posix } from 'node:path';

/** One allow-list entry, e.g. qemu+tls://*\/system or qemu+unix:///system?socket=/var/lab/* */
export interface AllowRule {
  text: string;
  scheme: string;
  /** '*' any host, '' no host (local transports), else this host exactly */
  host: string;
  path: string;
  /** qemu+unix: the directory (with its subdirectories) socket= may name */
  socketDir?: string;
}

/** Query keys that are never allowed: they run programs or weaken the transport's checks. */
const FORBIDDEN_KEYS = new Set(['command', 'netcat', 'no_verify', 'pkipath', 'keyfile', 'known_hosts', 'proxy']);

function parse(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URI`);
  }
}

export function parseAllowRule(text: string): AllowRule {
  const url = parse(text);
  const rule: AllowRule = { text, scheme: url.protocol.replace(/:$/, ''), host: decodeURIComponent(url.hostname), path: url.pathname };
  for (const [key, value] of url.searchParams) {
    if (key !== 'socket' || !value.endsWith('/*')) throw new Error(`allow rule "${text}": only socket=<directory>/* may follow "?"`);
    rule.socketDir = posix.normalize(value.slice(0, -2));
  }
  return rule;
}

export class UriRefused extends Error {
  constructor(
    readonly part: string,
    message: string,
  ) {
    super(message);
    this.name = 'UriRefused';
  }
}

function inside(dir: string, path: string): boolean {
  const p = posix.normalize(path);
  return posix.isAbsolute(p) && (p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`));
}

/** Characters a URI may hold at all: libvirt's own parser (libxml2, with ';' as a second query
 *  separator and its own percent-decoding) must never see a URI that reads differently to us. */
const PLAIN_URI = /^[A-Za-z0-9+.-]+:\/\/[A-Za-z0-9.:[\]-]*(\/[A-Za-z0-9_/.-]*)?(\?[A-Za-z0-9_=/.&-]*)?$/;

function plainOrRefuse(uri: string, what: string): void {
  if (PLAIN_URI.test(uri)) return;
  const bad = [...uri].find((c) => !/[A-Za-z0-9+.:/?=&_[\]-]/.test(c));
  throw new UriRefused('characters', bad !== undefined ? `character ${JSON.stringify(bad)} is not allowed in a ${what}` : `"${uri}" is not a plain ${what}`);
}

/** Throws UriRefused naming the first part of `uri` that no rule allows. */
export function checkLibvirtUri(uri: string, rules: readonly AllowRule[]): void {
  plainOrRefuse(uri, 'destination URI');
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new UriRefused('uri', `"${uri}" is not a libvirt URI`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  for (const key of url.searchParams.keys()) {
    if (FORBIDDEN_KEYS.has(key)) throw new UriRefused(`query ${key}=`, `query key ${key}= is never allowed in a destination URI`);
  }
  let candidates = rules.filter((r) => r.scheme === scheme);
  if (candidates.length === 0) {
    const allowed = [...new Set(rules.map((r) => r.scheme))].join(', ') || 'none';
    throw new UriRefused('transport', `transport ${scheme} is not allowed (allowed: ${allowed})`);
  }
  if (url.username || url.password) throw new UriRefused('user', 'user information in a destination URI is not allowed');
  if (url.hash) throw new UriRefused('fragment', 'a fragment in a destination URI is not allowed');
  const host = decodeURIComponent(url.hostname);
  candidates = candidates.filter((r) => (r.host === '*' ? host !== '' : r.host === host));
  if (candidates.length === 0) throw new UriRefused('host', `host "${host}" is not allowed for ${scheme}`);
  candidates = candidates.filter((r) => r.path === url.pathname);
  if (candidates.length === 0) throw new UriRefused('path', `path ${url.pathname} is not allowed for ${scheme}`);
  for (const [key, value] of url.searchParams) {
    if (key !== 'socket') throw new UriRefused(`query ${key}=`, `query key ${key}= is not allowed`);
    candidates = candidates.filter((r) => r.socketDir !== undefined && inside(r.socketDir, value));
    if (candidates.length === 0) throw new UriRefused('query socket=', `socket=${value} is outside the allowed directories`);
  }
  if (!url.searchParams.has('socket') && candidates.every((r) => r.socketDir !== undefined)) {
    throw new UriRefused('query socket=', `${scheme} needs socket= inside an allowed directory`);
  }
}

/** QEMU's migration stream URI (VIR_MIGRATE_PARAM_URI): tcp://HOST[:PORT] and nothing else
 *  (QEMU also knows exec:, which runs a command on the source). */
export function checkMigrationUri(uri: string): void {
  if (!uri.startsWith('tcp://')) throw new UriRefused('transport', `migration URI transport must be tcp:// (got ${JSON.stringify(uri.split(':')[0])})`);
  plainOrRefuse(uri, 'migration URI');
  const url = new URL(uri);
  if (!url.hostname || (url.pathname !== '' && url.pathname !== '/') || url.search || url.username) {
    throw new UriRefused('uri', `migration URI must be tcp://HOST[:PORT], got ${JSON.stringify(uri)}`);
  }
}
