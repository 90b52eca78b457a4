// sd_notify(3) for Type=notify: READY=1 once serving, STOPPING=1 on shutdown, WATCHDOG=1 pings.
// Everything is a no-op without NOTIFY_SOCKET, so the daemon runs the same outside systemd.
import { execFileSync } from 'node:child_process';
import { sendDatagram } from '../common/unix-dgram.js';

export type NotifyEnv = NodeJS.ProcessEnv;

/**
 * Sends KEY=VALUE lines to the service manager. Returns false when not under systemd or sending
 * failed. Abstract sockets ("@name") go through systemd-notify(1): the datagram addon cannot
 * address them (needs NotifyAccess=all then, since the sender is a child process).
 */
export function notify(state: string, env: NotifyEnv = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  if (!socket.startsWith('@')) return sendDatagram(socket, Buffer.from(state)) === null;
  try {
    // --no-block: skip the BARRIER=1 round trip, which would stall the event loop
    execFileSync('systemd-notify', ['--no-block', ...state.split('\n').filter(Boolean)], {
      env: { ...process.env, NOTIFY_SOCKET: socket },
      stdio: 'ignore',
      timeout: 2000,
    });
    return true;
  } catch {
    return false;
  }
}

/** Tells systemd start-up finished (ends "activating"); status shows in `systemctl status`. */
export function notifyReady(status?: string, env: NotifyEnv = process.env): boolean {
  return notify(`READY=1${status ? `\nSTATUS=${status}` : ''}`, env);
}

export function notifyStopping(status?: string, env: NotifyEnv = process.env): boolean {
  return notify(`STOPPING=1${status ? `\nSTATUS=${status}` : ''}`, env);
}

export function notifyStatus(status: string, env: NotifyEnv = process.env): boolean {
  return notify(`STATUS=${status}`, env);
}

/** Watchdog interval in ms if systemd asked this process for pings (WatchdogSec=), else null. */
export function watchdogIntervalMs(env: NotifyEnv = process.env): number | null {
  if (!env.NOTIFY_SOCKET) return null;
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return null;
  return Math.max(1, Math.floor(usec / 1000));
}

export interface Watchdog {
  readonly intervalMs: number;
  stop(): void;
}

/**
 * Pings WATCHDOG=1 at half the interval from the event loop, so a blocked loop gets the daemon
 * restarted. Returns null when no watchdog was requested. The timer does not keep the process alive.
 */
export function startWatchdog(env: NotifyEnv = process.env): Watchdog | null {
  const interval = watchdogIntervalMs(env);
  if (interval === null) return null;
  const ping = (): void => void notify('WATCHDOG=1', env);
  ping();
  const timer = setInterval(ping, Math.max(1, Math.floor(interval / 2)));
  timer.unref();
  return { intervalMs: interval, stop: () => clearInterval(timer) };
}
