// The sampling loop: one sample at a time, never overlapping, each bounded by a timeout.
// A slow libvirt call delays the next sample instead of piling up calls behind it.

export interface MonitorOptions<T> {
  intervalMs: number;
  timeoutMs: number;
  sample: () => Promise<T>;
  onSample: (value: T) => void | Promise<void>;
  onError: (err: Error) => void;
}

export interface Monitor {
  /** take the next sample now instead of waiting out the interval (e.g. on an iteration event) */
  poke(): void;
  /** stop; resolves once the sample in flight (if any) has been handled */
  stop(): Promise<void>;
}

export class SampleTimeoutError extends Error {
  constructor(ms: number) {
    super(`job statistics did not arrive within ${ms} ms`);
    this.name = 'SampleTimeoutError';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SampleTimeoutError(ms)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function startMonitor<T>(opts: MonitorOptions<T>): Monitor {
  let stopped = false;
  let wake: (() => void) | null = null;
  let poked = false;

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (poked || stopped) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const loop = (async () => {
    while (!stopped) {
      poked = false;
      const started = Date.now();
      try {
        const value = await withTimeout(opts.sample(), opts.timeoutMs);
        if (stopped) break;
        await opts.onSample(value);
      } catch (err) {
        if (stopped) break;
        opts.onError(err instanceof Error ? err : new Error(String(err)));
      }
      await pause(Math.max(0, opts.intervalMs - (Date.now() - started)));
    }
  })();

  return {
    poke(): void {
      poked = true;
      wake?.();
    },
    async stop(): Promise<void> {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
