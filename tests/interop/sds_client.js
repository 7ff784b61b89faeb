// An independent SDS client (@grpc/grpc-js + our api/ protos, keepCase) for Portcullis' SDS
// integration tests: envoy.service.secret.v3.SecretDiscoveryService over TARGET.
//   node sds_client.js TARGET fetch OUTDIR [NAME...] [--build-version MAJOR.MINOR]
//     One FetchSecrets call; prints {code, details, version_info, nonce, secrets: [...]} and writes
//     each secret's PEM into OUTDIR: <name>_chain.pem + <name>_key.pem (tls_certificate),
//     <name>.pem (trusted_ca), <name>_<td>.pem per trust domain (SPIFFE validator config).
//   node sds_client.js TARGET stream OUTDIR [NAME...] [--responses N] [--timeout MS]
//     One StreamSecrets call that ACKs every response and prints one JSON line per response as it
//     arrives ({at_ms, version_info, nonce, secrets}), then a final {code, details} line after N
//     responses or the timeout.
// Names are file-name-sanitized (non [A-Za-z0-9.-] -> '_').
'use strict';
const path = require('path');
const fs = require('fs');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const [target, mode, outdir, ...rest] = process.argv.slice(2);
const names = [];
const opts = {responses: 1, timeout: 10000};
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--build-version') opts.buildVersion = rest[++i].split('.').map(Number);
  else if (rest[i] === '--responses') opts.responses = Number(rest[++i]);
  else if (rest[i] === '--timeout') opts.timeout = Number(rest[++i]);
  else names.push(rest[i]);
}
const api = path.resolve(__dirname, '..', '..', 'api');
const SDS_PROTO = 'envoy/service/secret/v3/sds.proto';
const pkg = grpc.loadPackageDefinition(loader.loadSync(SDS_PROTO, {keepCase: true, defaults: true, includeDirs: [api]}));
const client = new pkg.envoy.service.secret.v3.SecretDiscoveryService(target, grpc.credentials.createInsecure());

// A protobufjs root over the same files, to decode the Any payloads.
const root = new protobuf.Root();
root.resolvePath = (origin, file) => (fs.existsSync(path.join(api, file)) ? path.join(api, file) : file);
root.loadSync([SDS_PROTO, 'envoy/extensions/transport_sockets/tls/v3/secret.proto',
               'envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.proto'], {keepCase: true});
const Secret = root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret');
const SpiffeConfig = root.lookupType('envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig');
const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

const safe = (n) => n.replace(/[^A-Za-z0-9.-]/g, '_');
const write = (file, data) => fs.writeFileSync(path.join(outdir, file), data);
const text = (ds) => Buffer.from(ds.inline_bytes || ds.inline_string || '').toString();

// describe decodes one Any(Secret), writes its PEM files and returns a summary.
function describe(any) {
  if (any.type_url !== SECRET_TYPE) return {error: 'unexpected type_url ' + any.type_url};
  const s = Secret.toObject(Secret.decode(any.value), {bytes: Buffer});
  const out = {name: s.name};
  if (s.tls_certificate) {
    const chain = text(s.tls_certificate.certificate_chain);
    const key = text(s.tls_certificate.private_key);
    write(safe(s.name) + '_chain.pem', chain);
    write(safe(s.name) + '_key.pem', key);
    out.kind = 'tls_certificate';
    out.serial = new crypto.X509Certificate(chain).serialNumber.toLowerCase();
    out.key_header = key.split('\n')[0];
  } else if (s.validation_context) {
    const vc = s.validation_context;
    if (vc.trusted_ca) {
      out.kind = 'trusted_ca';
      write(safe(s.name) + '.pem', text(vc.trusted_ca));
    } else if (vc.custom_validator_config) {
      out.kind = 'spiffe_validator';
      out.validator = vc.custom_validator_config.name;
      out.typed_config = vc.custom_validator_config.typed_config.type_url;
      const cfg = SpiffeConfig.toObject(SpiffeConfig.decode(vc.custom_validator_config.typed_config.value), {bytes: Buffer});
      out.trust_domains = (cfg.trust_domains || []).map((td) => {
        write(safe(s.name) + '_' + safe(td.name) + '.pem', text(td.trust_bundle));
        return td.name;
      });
    }
  }
  return out;
}

function request(version, nonce) {
  const r = {type_url: SECRET_TYPE, resource_names: names, version_info: version || '', response_nonce: nonce || '',
             node: {id: 'sds-interop', cluster: 'test', user_agent_name: 'envoy'}};
  if (opts.buildVersion) {
    r.node.user_agent_build_version = {version: {major_number: opts.buildVersion[0], minor_number: opts.buildVersion[1] || 0}};
  }
  return r;
}

const finish = (result) => { console.log(JSON.stringify(result)); client.close(); };

if (mode === 'fetch') {
  client.FetchSecrets(request(), {deadline: new Date(Date.now() + opts.timeout)}, (err, resp) => {
    if (err) return finish({code: err.code, details: err.details});
    finish({code: 0, details: '', version_info: resp.version_info, nonce: resp.nonce, type_url: resp.type_url,
            secrets: resp.resources.map(describe)});
  });
} else if (mode === 'stream') {
  let seen = 0;
  const call = client.StreamSecrets();
  const timer = setTimeout(() => { call.cancel(); }, opts.timeout);
  let ended = false;
  const end = (code, details) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    finish({code, details, responses: seen});
  };
  call.on('data', (resp) => {
    const at = Date.now();
    seen++;
    console.log(JSON.stringify({at_ms: at, version_info: resp.version_info, nonce: resp.nonce,
                                secrets: resp.resources.map(describe)}));
    call.write(request(resp.version_info, resp.nonce));  // ACK
    if (seen >= opts.responses) { call.cancel(); end(0, ''); }
  });
  call.on('error', (err) => end(err.code, err.details));
  call.on('status', (s) => end(s.code, s.details));
  call.write(request());
} else {
  console.error('unknown mode ' + mode);
  process.exit(2);
}
