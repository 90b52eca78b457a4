// Roles from a TLS client certificate's subject. A pattern lists RDNs that must all be present
// ("OU=vmigrate-peer" or "CN=engine.example,O=Example"); a subject matching several patterns has
// all their roles.
import type { PeerCertificate } from 'node:tls';
import { ROLES, type Role } from '../../api/roles.js';

export type SubjectPattern = ReadonlyArray<readonly [attribute: string, value: string]>;

const RDN = /^\s*([A-Za-z][A-Za-z0-9.]*)\s*=\s*([^,=]*[^,=\s])\s*$/;

/** "OU=a,CN=b" -> [['OU','a'],['CN','b']]; throws naming the part that is not ATTR=VALUE. */
export function parseSubjectPattern(text: string): SubjectPattern {
  const parts = text.split(',');
  if (text.trim() === '') throw new Error('an empty subject pattern would match every certificate');
  return parts.map((part) => {
    const m = RDN.exec(part);
    if (!m) throw new Error(`subject pattern "${text}": "${part.trim()}" is not ATTRIBUTE=VALUE`);
    return [m[1]!, m[2]!] as const;
  });
}

/** Node gives repeated attributes as arrays. */
type Subject = PeerCertificate['subject'] | Record<string, string | string[] | undefined>;

function values(subject: Subject, attribute: string): string[] {
  const v = (subject as Record<string, string | string[] | undefined>)[attribute];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function subjectMatches(subject: Subject, pattern: SubjectPattern): boolean {
  return pattern.every(([attribute, value]) => values(subject, attribute).includes(value));
}

/** A subject as people read it in logs: "CN=a,OU=vmigrate-peer,O=vmigrate lab". */
export function subjectText(subject: Subject): string {
  const order = ['CN', 'OU', 'O', 'L', 'ST', 'C'];
  const keys = Object.keys(subject).sort((x, y) => (order.indexOf(x) + 1 || 99) - (order.indexOf(y) + 1 || 99));
  return keys.flatMap((k) => values(subject, k).map((v) => `${k}=${v}`)).join(',');
}

export type RoleTable = ReadonlyArray<readonly [Role, SubjectPattern]>;

/** Parses the `roles` setting once at start. */
export function roleTable(roles: Record<Role, string[]>): RoleTable {
  return ROLES.flatMap((role) => roles[role].map((p) => [role, parseSubjectPattern(p)] as const));
}

export function rolesOf(subject: Subject, table: RoleTable): Set<Role> {
  return new Set(table.filter(([, pattern]) => subjectMatches(subject, pattern)).map(([role]) => role));
}
