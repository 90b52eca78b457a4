// The agent's one libvirt connection: opened on first use, re-opened after libvirt drops it,
// with domain events routed to the agent.
import type { Logger } from 'pino';
import { openConnection } from '../libvirt/index.js';
import type { Connection, DomainEvent } from '../libvirt/types.js';

export class LibvirtLink {
  private conn: Promise<Connection> | null = null;

  constructor(
    private readonly uri: string,
    private readonly log: Logger,
    private readonly onEvent: (ev: DomainEvent) => void,
  ) {}

  get(): Promise<Connection> {
    if (!this.conn) {
      const opening = this.open();
      this.conn = opening;
      opening.catch(() => {
        if (this.conn === opening) this.conn = null;
      });
    }
    return this.conn;
  }

  private async open(): Promise<Connection> {
    const conn = await openConnection(this.uri);
    this.log.info({ event: 'libvirt.connected', uri: this.uri }, 'connected to libvirt');
    conn.onClose((reason) => {
      this.log.warn({ event: 'libvirt.closed', uri: this.uri, reason }, 'libvirt connection closed; will reconnect on next use');
      this.conn = null;
    });
    await conn.setKeepAlive(5, 3).catch(() => {});
    await conn.onDomainEvent(this.onEvent);
    return conn;
  }

  async close(): Promise<void> {
    const pending = this.conn;
    this.conn = null;
    if (pending) await (await pending.catch(() => null))?.close();
  }
}
