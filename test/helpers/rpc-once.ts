// One JSON-RPC call as a separate process: `node rpc-once.js URL METHOD [PARAMS_JSON]` prints the
// reply ({"result":...} or {"error":...}) as one JSON line, or exits 1 when the agent cannot be
// reached. For agents in another network namespace (run it under `nsenter --net`).
import { rawCall, useClientTls } from './raw-rpc.js';

// a wss:// agent: the client certificate comes from the same variables the CLI reads
const { VMIGRATE_CA: ca, VMIGRATE_CERT: cert, VMIGRATE_KEY: key } = process.env;
if (ca && cert && key) useClientTls({ ca, cert, key });

const [url, method, params] = process.argv.slice(2);
if (!url || !method) {
  console.error('usage: rpc-once.js URL METHOD [PARAMS_JSON]');
  process.exit(2);
}
try {
  console.log(JSON.stringify(await rawCall(url, method, params ? JSON.parse(params) : {}, 10_000)));
} catch (err) {
  console.error(`rpc-once: ${method} on ${url}: ${(err as Error).message}`);
  process.exit(1);
}
