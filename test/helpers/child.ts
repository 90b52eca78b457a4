import type { ChildProcess } from 'node:child_process';

/**
 * Watch a child for its exit; `stop()` sends SIGTERM, then SIGKILL after graceMs, and resolves with
 * the exit code (at once if it already exited). Call right after spawn so no exit is missed.
 */
export function stoppable(child: ChildProcess, graceMs: number): { exited: Promise<number | null>; stop(): Promise<number | null> } {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
