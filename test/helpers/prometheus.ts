// Starts a real Prometheus server (Debian's `prometheus`) scraping the given targets every second,
// with config and TSDB in a temp dir, and queries it over its HTTP API. Reusable in lab runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stoppable } from './child.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusOptions {
  /** "host:port" (path /metrics) or full URLs like http://127.0.0.1:9411/metrics */
  targets: string[];
  /** default 1 */
  scrapeIntervalSeconds?: number;
  /** job label; default "vmigrate" */
  job?: string;
}

export interface Prometheus {
  /** base URL, e.g. http://127.0.0.1:40123 */
  readonly url: string;
  /** instant query via /api/v1/query; throws on a query error */
  query(expr: string): Promise<PromSample[]>;
  /** polls query(expr) until check(result) holds; returns the last result or throws after timeoutMs */
  waitFor(expr: string, check: (r: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  stop(): Promise<void>;
}

export function prometheusSkipReason(): string | null {
  return existsSync(PROMETHEUS_BIN) ? null : `${PROMETHEUS_BIN} not installed (apt-get install prometheus)`;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

function scrapeConfigs(targets: string[], job: string, interval: number): string {
  // one scrape job per metrics path; JSON is valid YAML
  const byPath = new Map<string, { scheme: string; hosts: string[] }>();
  for (const t of targets) {
    const u = new URL(/^https?:\/\//.test(t) ? t : `http://${t}/metrics`);
    const key = `${u.protocol}${u.pathname}`;
    const entry = byPath.get(key) ?? { scheme: u.protocol.replace(':', ''), hosts: [] };
    entry.hosts.push(u.host);
    byPath.set(key, entry);
  }
  const jobs = [...byPath.entries()].map(([key, e], i) => ({
    job_name: i === 0 ? job : `${job}_${i}`,
    scheme: e.scheme,
    metrics_path: key.slice(key.indexOf('/')),
    scrape_interval: `${interval}s`,
    scrape_timeout: `${interval}s`,
    static_configs: [{ targets: e.hosts }],
  }));
  return JSON.stringify({ global: { scrape_interval: `${interval}s`, evaluation_interval: `${interval}s` }, scrape_configs: jobs }, null, 2);
}

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, scrapeConfigs(opts.targets, opts.job ?? 'vmigrate', opts.scrapeIntervalSeconds ?? 1));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const proc = stoppable(child, 10_000);

  const stop = async (): Promise<void> => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready: ${stderr.trim() || 'timeout'}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const query = async (expr: string): Promise<PromSample[]> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${expr}: ${body.error ?? res.status}`);
    if (body.data.resultType !== 'vector') throw new Error(`query ${expr}: expected a vector, got ${body.data.resultType}`);
    return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };

  return {
    url,
    query,
    async waitFor(expr, check, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const r = await query(expr);
        if (check(r)) return r;
        if (Date.now() > end) throw new Error(`timed out waiting on ${expr}; last result ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 250));
      }
    },
    stop,
  };
}
