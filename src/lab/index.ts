// Programmatic lab API (tests, benchmarks, demo).
export { labUp, labDown, labStatus } from './lab.js';
export type { LabInfo, LabHostInfo, LabStatus, LabHostStatus, LabDomainStatus, LabUpOptions, LabDownResult } from './lab.js';
export { defineGuest, destroyGuest } from './guest.js';
export type { DefineGuestOptions, GuestInfo } from './guest.js';
export { guestXml, guestCmdline } from './guest-xml.js';
export type { GuestXmlOptions } from './guest-xml.js';
export { readGuestProgress, readGuestStatus, readGuestWords, measureGuestRate, PROGRESS_ADDR } from './guest-progress.js';
export type { GuestStatus } from './guest-progress.js';
export { ensureGuestKernel } from './guest-build.js';
export { labDir, hostPlan, HOST_NAMES, DEFAULT_LAB_DIR } from './paths.js';
export type { HostName } from './paths.js';
export { LabError, EXIT_NOT_ROOT } from './errors.js';
export { virsh, listDomains, domainState, hostUuid } from './virsh.js';
