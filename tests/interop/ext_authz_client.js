// An independent ext_authz client (@grpc/grpc-js with our api/ protos, as Envoy's would send):
// one Check or Health call against TARGET, printing one JSON line.
//   node ext_authz_client.js TARGET check '<CheckRequest as JSON, proto field names>'
//   node ext_authz_client.js TARGET health [SERVICE]
//   node ext_authz_client.js - encode '<CheckRequest JSON>' FILE   (a gRPC-framed body for h2load)
// TARGET: unix:///path.sock or 127.0.0.1:port.
'use strict';
const path = require('path');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [target, mode, arg, file] = process.argv.slice(2);
const api = path.resolve(__dirname, '..', '..', 'api');
const loadOpts = {keepCase: true, defaults: false, enums: Number, includeDirs: [api]};
const authDef = loader.loadSync('envoy/service/auth/v3/external_auth.proto', loadOpts);
const auth = grpc.loadPackageDefinition(authDef).envoy.service.auth.v3;
const health = grpc.loadPackageDefinition(loader.loadSync('grpc/health/v1/health.proto', loadOpts)).grpc.health.v1;
const deadline = () => ({deadline: new Date(Date.now() + 5000)});
const out = (o) => console.log(JSON.stringify(o));

if (mode === 'encode') {
  // The request type's serializer from the loaded service definition, then the 5-byte prefix.
  const method = authDef['envoy.service.auth.v3.Authorization'].Check;
  const msg = method.requestSerialize(JSON.parse(arg));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(msg.length, 1);
  fs.writeFileSync(file, Buffer.concat([prefix, msg]));
  out({bytes: msg.length + 5});
} else if (mode === 'check') {
  const client = new auth.Authorization(target, grpc.credentials.createInsecure());
  client.Check(JSON.parse(arg), deadline(), (err, r) => {
    out(err ? {grpc_code: err.code, details: err.details} : {grpc_code: 0, response: r});
    client.close();
  });
} else if (mode === 'health') {
  const client = new health.Health(target, grpc.credentials.createInsecure());
  client.Check({service: arg || ''}, deadline(), (err, r) => {
    out(err ? {grpc_code: err.code, details: err.details} : {grpc_code: 0, status: r.status});
    client.close();
  });
} else {
  console.error('unknown mode ' + mode);
  process.exit(2);
}
