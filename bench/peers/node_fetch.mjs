// Node 20 peer: global fetch (undici's default dispatcher, keep-alive).
//
//   node node_fetch.mjs oneshot URL          one GET, prints the token
//   node node_fetch.mjs seq N URL            N GETs one after another
//   node node_fetch.mjs pool N C URL         N GETs, C in flight
//
// API key: environment variable BENCH_API_KEY. For TLS, trust the bench CA with
// NODE_EXTRA_CA_CERTS=<ca.pem>. seq and pool print "ok=<n> seconds=<elapsed>".
const key = process.env.BENCH_API_KEY;
if (!key) {
  console.error("node_fetch: set BENCH_API_KEY in the environment");
  process.exit(2);
}
const headers = {
  authorization: `Bearer ${key}`,
  "x-api-version": "2025-09",
  accept: "application/json",
};

let reported = false;
async function getToken(url) {
  try {
    const res = await fetch(url, { headers });
    const body = await res.json();
    if (res.status === 200 && typeof body.token === "string" && body.token.length > 0) return body.token;
    if (!reported) console.error(`node_fetch: HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
  } catch (err) {
    if (!reported) console.error(`node_fetch: ${err.cause ? err.cause.message : err.message}`);
  }
  reported = true;
  return null;
}

function usage() {
  console.error("usage: node_fetch.mjs oneshot URL | seq N URL | pool N C URL");
  process.exit(2);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "oneshot" && args.length === 1) {
  const token = await getToken(args[0]);
  if (token === null) process.exit(1);
  process.stdout.write(token + "\n");
} else if (mode === "seq" && args.length === 2) {
  const n = Number(args[0]);
  const url = args[1];
  let ok = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if ((await getToken(url)) !== null) ok++;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`ok=${ok} seconds=${secs.toFixed(6)}\n`);
  process.exitCode = ok === n ? 0 : 1;
} else if (mode === "pool" && args.length === 3) {
  const n = Number(args[0]);
  const c = Math.max(1, Math.min(n, Number(args[1])));
  const url = args[2];
  let next = 0;
  let ok = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      if ((await getToken(url)) !== null) ok++;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: c }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`ok=${ok} seconds=${secs.toFixed(6)}\n`);
  process.exitCode = ok === n ? 0 : 1;
} else {
  usage();
}
