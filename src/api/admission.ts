// The destination-side handshake: before any memory is copied, the source agent asks the
// destination agent to admit the incoming migration (like VDSM's VM.migrationCreate).
import { z } from 'zod';

export const AdmissionRequestSchema = z.strictObject({
  vmUuid: z.string().uuid(),
  vmName: z.string().min(1),
  memoryBytes: z.number().int().nonnegative(),
  sourceName: z.string().min(1),
  sourceHostUuid: z.string().min(1),
  /** the migration already runs: a restarted source agent re-establishes its admission */
  resume: z.boolean().optional(),
});

export const AdmissionEndSchema = z.strictObject({ admissionId: z.string().min(1) });

export type AdmissionRequest = z.input<typeof AdmissionRequestSchema>;

export interface AdmissionResult {
  admissionId: string;
  /** libvirt URI the source libvirtd connects to */
  libvirtUri: string;
  /** QEMU migration stream URI, when the destination has one configured */
  migrationUri?: string;
  hostUuid: string;
  name: string;
}
