// A VM recorded as being migrated that is no longer defined on this host (a transient domain that
// migrated away while no agent ran): every call answers as libvirt does for a missing domain, so the
// migration's status can be built and followed to its end like any other.
import { ErrorCode, ErrorDomain, LibvirtError } from '../libvirt/errors.js';
import type { Domain } from '../libvirt/types.js';

export function goneDomain(uuid: string, name: string): Domain {
  const gone = (): Promise<never> => Promise.reject(new LibvirtError(ErrorCode.NO_DOMAIN, ErrorDomain.DOMAIN, `Domain not found: no domain with matching uuid '${uuid}' (${name})`));
  // every method, present and future, answers "no domain"; only the identity is real
  const identity: Record<string | symbol, unknown> = { name, uuid };
  return new Proxy(identity, { get: (target, key) => (key in target ? target[key] : key === 'then' ? undefined : gone) }) as unknown as Domain;
}
