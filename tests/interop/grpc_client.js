// An independent gRPC client (@grpc/grpc-js) for Portcullis' interop tests. Runs one scenario
// against TARGET and prints one JSON line: {code, details, replies, ...}.
//   node grpc_client.js TARGET SCENARIO [--tls CA CERT KEY] [--arg N]
// TARGET: unix:///path.sock or 127.0.0.1:port. Scenarios: unary, unary_status, stream, bidi,
// deadline, unknown, too_large, health, health_unknown, stream_cancel, many_unary.
'use strict';
const path = require('path');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [target, scenario, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--tls') opts.tls = rest.slice(i + 1, i + 4), i += 3;
  else if (rest[i] === '--arg') opts.arg = Number(rest[++i]);
}
const root = path.resolve(__dirname, '..', '..');
const load = (file, dirs) => grpc.loadPackageDefinition(loader.loadSync(file, {keepCase: true, defaults: true, includeDirs: dirs}));
const testPkg = load('grpc_test.proto', [path.join(root, 'tests', 'integration')]);
const healthPkg = load('grpc/health/v1/health.proto', [path.join(root, 'api')]);

let creds = grpc.credentials.createInsecure();
const channelOptions = {};
if (opts.tls) {
  // "-" for the certificate and key: a client that presents none.
  const [ca, cert, key] = opts.tls.map((f) => (f === '-' ? null : fs.readFileSync(f)));
  creds = grpc.credentials.createSsl(ca, key, cert);
  channelOptions['grpc.ssl_target_name_override'] = 'localhost';
}
const client = new testPkg.portcullis.test.Test(target, creds, channelOptions);
const health = new healthPkg.grpc.health.v1.Health(target, creds, channelOptions);

function done(result) {
  console.log(JSON.stringify(result));
  client.close();
  health.close();
}
const errResult = (err, extra) => Object.assign({code: err ? err.code : 0, details: err ? err.details : ''}, extra || {});
const deadline = (ms) => ({deadline: new Date(Date.now() + ms)});

const md = new grpc.Metadata();
md.set('x-test', 'hello');

const scenarios = {
  unary: () => client.Echo({text: 'hi'}, md, deadline(5000), (err, r) => done(errResult(err, {replies: r ? [r] : []}))),
  unary_status: () => client.Echo({text: 'nope: 100% \u00e9', status: 7}, deadline(5000),
                                  (err) => done(errResult(err))),
  deadline: () => client.Echo({hang: true}, deadline(opts.arg || 300), (err) => done(errResult(err))),
  too_large: () => client.Echo({payload: Buffer.alloc(opts.arg || 5 << 20)}, deadline(10000),
                               (err, r) => done(errResult(err, {replies: r ? [r.text] : []}))),
  unknown: () => {
    const c = new grpc.Client(target, creds, channelOptions);
    c.makeUnaryRequest('/portcullis.test.Test/Nope', (x) => x, (x) => x, Buffer.alloc(0), deadline(5000),
                       (err) => { c.close(); done(errResult(err)); });
  },
  stream: () => {
    const replies = [];
    const call = client.Stream({text: 's', count: opts.arg || 5}, deadline(10000));
    call.on('data', (r) => replies.push(r.index));
    call.on('error', (err) => done(errResult(err, {replies})));
    call.on('end', () => setImmediate(() => replies.done || done({code: 0, details: '', replies})));
    call.on('status', (s) => { if (s.code === 0) { replies.done = true; done({code: 0, details: s.details, replies}); } });
  },
  stream_cancel: () => {
    const call = client.Stream({text: 's', count: -1}, deadline(10000));
    call.on('error', (err) => done(errResult(err)));
    setTimeout(() => call.cancel(), 200);
  },
  bidi: () => {
    const replies = [];
    const call = client.Chat(deadline(10000));
    call.on('data', (r) => replies.push(r.text + ':' + r.index));
    call.on('error', (err) => done(errResult(err, {replies})));
    call.on('status', (s) => { if (s.code === 0) done({code: 0, details: s.details, replies}); });
    for (const t of ['a', 'b', 'c']) call.write({text: t});
    call.end();
  },
  health: () => health.Check({service: ''}, deadline(5000), (err, r) => done(errResult(err, {status: r && r.status}))),
  health_unknown: () => health.Check({service: 'nope'}, deadline(5000), (err) => done(errResult(err))),
  many_unary: () => {
    const n = opts.arg || 200;
    let left = n;
    let failed = 0;
    for (let i = 0; i < n; i++) {
      client.Echo({text: String(i)}, deadline(10000), (err, r) => {
        if (err || r.text !== String(i)) failed++;
        if (--left === 0) done({code: 0, details: '', calls: n, failed});
      });
    }
  },
};
if (!scenarios[scenario]) { console.error('unknown scenario ' + scenario); process.exit(2); }
scenarios[scenario]();
