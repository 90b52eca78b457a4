#!/usr/bin/env node
import { RpcError } from '../client/client.js';
import { buildProgram } from './program.js';

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof RpcError) {
      console.error(`vmigrate: ${err.errorName ?? err.code}: ${err.message}`);
    } else {
      console.error(`vmigrate: ${err instanceof Error ? err.message : String(err)}`);
    }
    process.exitCode = 2;
  }
}

await main();
