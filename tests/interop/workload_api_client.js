// An independent SPIFFE Workload API client (@grpc/grpc-js, our api/ protos loaded with
// keepCase) for tests/integration/test_workload_api.py. Prints one JSON line per event.
//   node workload_api_client.js TARGET SCENARIO [--audience A]... [--count N] [--no-header]
// TARGET: unix:///path.sock or 127.0.0.1:port. Scenarios:
//   x509_watch  FetchX509SVID; one line per response (DER fields base64), until --count responses
//   bundles     the first FetchX509Bundles and FetchJWTBundles responses
//   jwt         FetchJWTSVID for --audience, then ValidateJWTSVID of the token for the first one
//   call METHOD one call of METHOD (no header with --no-header); prints {code, details}
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [target, scenario, ...rest] = process.argv.slice(2);
const opts = {audience: [], count: 1, header: true, method: null};
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--audience') opts.audience.push(rest[++i]);
  else if (rest[i] === '--count') opts.count = Number(rest[++i]);
  else if (rest[i] === '--no-header') opts.header = false;
  else opts.method = rest[i];
}
const root = path.resolve(__dirname, '..', '..');
const def = loader.loadSync('spiffe/workload/workload.proto',
                            {keepCase: true, defaults: true, includeDirs: [path.join(root, 'api')]});
const pkg = grpc.loadPackageDefinition(def);
const client = new pkg.SpiffeWorkloadAPI(target, grpc.credentials.createInsecure());

const md = new grpc.Metadata();
if (opts.header) md.set('workload.spiffe.io', 'true');
const deadline = (ms) => ({deadline: new Date(Date.now() + ms)});
const b64 = (buf) => Buffer.from(buf).toString('base64');
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const finish = (o) => { if (o) print(o); client.close(); };
const status = (err) => ({code: err ? err.code : 0, details: err ? err.details : ''});

const scenarios = {
  x509_watch: () => {
    let n = 0;
    const call = client.FetchX509SVID({}, md);
    call.on('data', (r) => {
      print({svids: r.svids.map((s) => ({spiffe_id: s.spiffe_id, x509_svid: b64(s.x509_svid),
                                         x509_svid_key: b64(s.x509_svid_key), bundle: b64(s.bundle)})),
             federated_bundles: Object.keys(r.federated_bundles)});
      if (++n >= opts.count) { call.cancel(); finish(); }
    });
    call.on('error', (err) => { if (err.code !== grpc.status.CANCELLED) finish(status(err)); });
  },
  bundles: () => {
    const x = client.FetchX509Bundles({}, md);
    x.on('error', (err) => err.code !== grpc.status.CANCELLED && finish(status(err)));
    x.once('data', (r) => {
      const x509 = Object.fromEntries(Object.entries(r.bundles).map(([k, v]) => [k, b64(v)]));
      x.cancel();
      const j = client.FetchJWTBundles({}, md);
      j.on('error', (err) => err.code !== grpc.status.CANCELLED && finish(status(err)));
      j.once('data', (jr) => {
        const jwt = Object.fromEntries(Object.entries(jr.bundles).map(([k, v]) => [k, JSON.parse(v.toString())]));
        j.cancel();
        finish({code: 0, x509, jwt});
      });
    });
  },
  jwt: () => {
    client.FetchJWTSVID({audience: opts.audience}, md, deadline(5000), (err, r) => {
      if (err) return finish(status(err));
      const token = r.svids[0].svid;
      client.ValidateJWTSVID({audience: opts.audience[0], svid: token}, md, deadline(5000), (verr, v) => {
        if (verr) return finish(Object.assign(status(verr), {token}));
        finish({code: 0, token, fetched_id: r.svids[0].spiffe_id, spiffe_id: v.spiffe_id, claims: v.claims});
      });
    });
  },
  call: () => {
    const m = opts.method;
    const cb = (err) => finish(status(err));
    if (m === 'FetchJWTSVID') return client.FetchJWTSVID({audience: ['x']}, md, deadline(5000), cb);
    if (m === 'ValidateJWTSVID') return client.ValidateJWTSVID({audience: 'x', svid: 'a.b.c'}, md, deadline(5000), cb);
    const call = client[m]({}, md, deadline(5000));
    call.on('data', () => { call.cancel(); finish({code: 0, details: 'data'}); });
    call.on('error', (err) => err.code !== grpc.status.CANCELLED && finish(status(err)));
  },
};
if (!scenarios[scenario]) { console.error('unknown scenario ' + scenario); process.exit(2); }
scenarios[scenario]();
