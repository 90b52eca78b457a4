// The agent's settings turned into the checks every migration's destination goes through.
import type { DestinationRules } from '../../migration/destination.js';
import type { AgentSettings } from '../context.js';
import { checkLibvirtUri, checkMigrationUri } from './libvirt-uri.js';
import { rolesOf, subjectText } from './subject.js';

export function destinationRules(settings: AgentSettings): DestinationRules {
  return {
    tls: settings.tls?.current ?? null,
    checkPeer: (cert) =>
      rolesOf(cert.subject ?? {}, settings.roles).has('peer')
        ? undefined
        : new Error(`the destination's certificate (${subjectText(cert.subject ?? {}) || 'no subject'}) is not a peer agent's`),
    checkLibvirtUri: (uri) => checkLibvirtUri(uri, settings.allowedLibvirtUris),
    checkMigrationUri,
  };
}
