// virsh for the tests' own reading of libvirt (no import from the project's lab or agent code, so a
// bug there cannot hide a bug in what the tests check).
import { execFile } from 'node:child_process';

export interface VirshResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function virshRawFacts(uri: string, args: string[], timeoutMs = 20_000): Promise<VirshResult> {
  return new Promise((resolve) => {
    execFile('virsh', ['-q', '-c', uri, ...args], { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 124) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function virsh(uri: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await virshRawFacts(uri, args, timeoutMs);
  if (r.code !== 0) throw new Error(`virsh ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
