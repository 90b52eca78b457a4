#!/usr/bin/env node
// vmigrated: the per-host live-migration agent. Reads its configuration, starts the agent and the
// metrics endpoint, tells systemd when it is ready, and stops cleanly on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { createLogger } from '../common/logger.js';
import { ConfigError, helpRequested, loadConfig, peerLibvirtUri, usage } from './config.js';
import { createMetrics } from './metrics.js';
import { notifyReady, notifyStopping, startWatchdog } from './systemd.js';
import { startAgent } from './agent.js';
import { createControllerFactory } from './controllers.js';
import { TlsFileError } from '../client/tls.js';
import { parseAllowRule } from './security/libvirt-uri.js';
import { roleTable } from './security/subject.js';
import { TlsStore } from './security/tls-store.js';
import { lockStateDir, StateDirBusyError, type StateLock } from './state-lock.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const asked = helpRequested(argv);
  if (asked === 'help') return void console.log(usage());
  if (asked === 'version') return void console.log(packageVersion());

  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`vmigrated: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  let tls: TlsStore | null = null;
  if (config.tls) {
    try {
      tls = new TlsStore({ ca: config.tlsCa, cert: config.tlsCert, key: config.tlsKey });
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err;
      const key = { ca: 'tlsCa', cert: 'tlsCert', key: 'tlsKey' }[err.which];
      console.error(`vmigrated: config key "${key}": ${err.message} (TLS is on; issue certificates as README's security section says, or set tls=false on a loopback listen address)`);
      process.exit(2);
    }
  }
  const logger = createLogger({ level: config.logLevel, destination: config.logTarget });
  if (!tls) logger.warn({ event: 'agent.tls_off', listen: config.listen }, 'TLS is off: every local user can call every verb on the loopback endpoint');
  const version = packageVersion();
  const controllers = createControllerFactory(config.defaultPolicy);

  // Before anything looks at the ledger: a second agent on this stateDir must not touch its migrations.
  let stateLock: StateLock;
  try {
    stateLock = await lockStateDir(config.stateDir, (err) =>
      logger.error({ event: 'agent.state_lock_lost', stateDir: config.stateDir, err: err.message }, 'lost the lock on the state directory'),
    );
  } catch (err) {
    if (!(err instanceof StateDirBusyError)) throw err;
    logger.error({ event: 'agent.state_dir_busy', stateDir: err.dir, holderPid: err.holderPid }, err.message);
    logger.flush();
    console.error(`vmigrated: ${err.message}`);
    process.exit(3);
  }

  const metrics = createMetrics();
  const agent = await startAgent({
    settings: {
      name: config.name,
      libvirtUri: config.libvirtUri,
      advertisedLibvirtUri: peerLibvirtUri(config),
      ...(config.migrationAddress ? { migrationUri: `tcp://${config.migrationAddress}` } : {}),
      monitorIntervalMs: config.monitorIntervalMs,
      sampleTimeoutMs: config.sampleTimeoutMs,
      queueTimeoutSec: config.queueTimeoutSec,
      dirtyRateSampleSec: config.dirtyRateSampleSec,
      migrationTls: config.migrationTls,
      ...(config.memoryCapacity !== null ? { memoryCapacityMiB: config.memoryCapacity } : {}),
      allowedLibvirtUris: config.allowedLibvirtUris.map(parseAllowRule),
      tls,
      roles: roleTable(config.roles),
    },
    listen: config.listen,
    localSocket: config.localSocket,
    limits: config, // DaemonConfig extends RpcLimits
    maxIncoming: config.maxIncoming,
    maxOutgoing: config.maxOutgoing,
    controllers,
    logger,
    version,
    onRefused: (verb, error) => metrics.refused(verb, error),
    stateDir: config.stateDir,
    onContext: (context) => {
      metrics.attach(context.manager);
      metrics.countIncoming(() => context.desk.incoming);
    },
  });
  const metricsServer = config.metricsListen ? await metrics.serve(config.metricsListen) : null;
  if (metricsServer) logger.info({ event: 'metrics.listening', url: metricsServer.url }, `metrics on ${metricsServer.url}`);

  const watchdog = startWatchdog();
  notifyReady(`serving on ${agent.rpc.url}`);
  logger.info({ event: 'agent.ready', version, name: config.name, configFile: config.configFile }, 'vmigrated ready');

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    notifyStopping();
    logger.info({ event: 'agent.stopping', signal }, `stopping on ${signal}`);
    watchdog?.stop();
    await agent.stop();
    await metricsServer?.close();
    await stateLock.release();
    logger.info({ event: 'agent.stopped' }, 'vmigrated stopped');
    logger.flush();
    process.exit(0);
  };
  // Certificate rotation: new files take effect for new connections, in and out.
  process.on('SIGHUP', () => {
    if (!tls) return;
    try {
      tls.reload();
      logger.info({ event: 'agent.tls_reloaded', cert: config.tlsCert }, 'TLS material reloaded');
    } catch (err) {
      logger.error({ event: 'agent.tls_reload_failed', err: (err as Error).message }, 'TLS reload failed; the previous certificates stay in force');
    }
  });
  // A bug in a promise chain must not take the agent (and the migrations it steers) down.
  process.on('unhandledRejection', (reason) => {
    logger.error({ event: 'agent.unhandled_rejection', err: reason instanceof Error ? reason.stack : String(reason) }, 'unhandled rejection (bug)');
  });
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
