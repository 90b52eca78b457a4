// The agent's one libvirt connection: opened on first use; when libvirt drops it (libvirtd restarted,
// keepalive timed out) it is re-opened in the background with backoff, and listeners (the running
// migrations) are told so that they re-acquire their domains. Domain events are routed to the agent.
import type { Logger } from 'pino';
import { openConnection } from '../libvirt/index.js';
import type { Connection, DomainEvent } from '../libvirt/types.js';

/** libvirt keepalive: a probe every 2 s, the connection is closed after 3 unanswered (~8 s). */
export const KEEPALIVE_INTERVAL_SEC = 2;
export const KEEPALIVE_COUNT = 3;

/** Delay before reconnect attempt `n` (0-based): 0.25 s doubling, at most 5 s. Pure. */
export function reconnectDelayMs(n: number): number {
  return Math.min(5_000, 250 * 2 ** Math.min(n, 5));
}

export class LibvirtLink {
  private conn: Promise<Connection> | null = null;
  private closed = false;
  private reconnecting = false;
  private readonly reconnectListeners = new Set<(conn: Connection) => void>();

  constructor(
    private readonly uri: string,
    private readonly log: Logger,
    private readonly onEvent: (ev: DomainEvent) => void,
  ) {}

  get(): Promise<Connection> {
    if (this.closed) return Promise.reject(new Error('the agent closed its libvirt connection'));
    if (!this.conn) {
      const opening = this.open();
      this.conn = opening;
      opening.catch(() => {
        if (this.conn === opening) this.conn = null;
      });
    }
    return this.conn;
  }

  /** Called with the new connection after libvirt dropped the old one and the link re-opened it. */
  onReconnect(listener: (conn: Connection) => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  private async open(): Promise<Connection> {
    const conn = await openConnection(this.uri);
    this.log.info({ event: 'libvirt.connected', uri: this.uri }, 'connected to libvirt');
    conn.onClose((reason) => {
      this.log.warn({ event: 'libvirt.closed', uri: this.uri, reason }, 'libvirt connection closed; reconnecting');
      if (this.conn && !this.closed) {
        this.conn = null;
        void this.reconnect();
      }
    });
    await conn.setKeepAlive(KEEPALIVE_INTERVAL_SEC, KEEPALIVE_COUNT).catch(() => {});
    await conn.onDomainEvent(this.onEvent);
    return conn;
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const lostAt = Date.now();
    try {
      for (let attempt = 0; !this.closed; attempt++) {
        await new Promise((r) => setTimeout(r, reconnectDelayMs(attempt)));
        if (this.closed) return;
        try {
          const conn = await this.get();
          this.log.info({ event: 'libvirt.reconnected', uri: this.uri, attempts: attempt + 1, downMs: Date.now() - lostAt }, 'reconnected to libvirt');
          for (const l of this.reconnectListeners) {
            try {
              l(conn);
            } catch (err) {
              this.log.error({ event: 'libvirt.reconnect_listener_failed', err: String(err) }, 'reconnect listener failed');
            }
          }
          return;
        } catch (err) {
          this.log.debug({ event: 'libvirt.reconnect_failed', uri: this.uri, attempt: attempt + 1, err: String(err) }, 'libvirt not reachable yet');
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.conn;
    this.conn = null;
    if (pending) await (await pending.catch(() => null))?.close();
  }
}
