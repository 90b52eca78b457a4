// Who may call what. A caller's roles come from its TLS client certificate's subject (matched
// against the agent's `roles` setting); the local Unix socket, root only, is a manager.
import type { VerbName } from './catalog.js';

export const ROLES = ['manager', 'peer', 'reader'] as const;
export type Role = (typeof ROLES)[number];

const READER_VERBS: readonly VerbName[] = ['Host.ping', 'Host.getCapabilities', 'Host.evacuationStatus', 'VM.list', 'VM.migrateStatus', 'Events.subscribe', 'Events.unsubscribe'];
// An evacuating source asks each destination what it can take (Host.getCapabilities).
const PEER_VERBS: readonly VerbName[] = ['VM.migrationCreate', 'VM.migrationEnd', 'Host.getCapabilities'];

/** The verbs each role may call; `manager` may call every verb. */
export function roleAllows(role: Role, verb: VerbName): boolean {
  if (role === 'manager') return true;
  return (role === 'peer' ? PEER_VERBS : READER_VERBS).includes(verb);
}

/**
 * Default subject patterns per role: the certificate's OU names the role, so one CA can issue
 * agents (peers), managers and read-only monitors. Each pattern lists RDNs that must all match.
 */
export const DEFAULT_ROLE_SUBJECTS: Record<Role, string[]> = {
  manager: ['OU=vmigrate-manager'],
  peer: ['OU=vmigrate-peer'],
  reader: ['OU=vmigrate-reader'],
};

/** The OU value of the default pattern of a role, for tools that issue certificates. */
export function defaultRoleOu(role: Role): string {
  return DEFAULT_ROLE_SUBJECTS[role][0]!.replace(/^OU=/, '');
}
