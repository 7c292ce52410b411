// TEST-ONLY key material for the end-to-end tests' OpenID Provider. See README.md.
//
//   node tests/idp/keys/generate.mjs           # refuses to overwrite existing files
//   node tests/idp/keys/generate.mjs --force   # regenerates everything (tests keep working:
//                                              # nothing hard-codes key bytes, only kids)
//
// Writes, next to this script:
//   <kid>.pem       PKCS#8 private key   <kid>.pub.pem  SPKI public key
//   primary.json    private JWKS: rsa-1 (RS256), ec-1 (ES256), ed-1 (EdDSA)
//   rotated.json    private JWKS: rsa-2 (RS256), ec-1, ed-1           (rsa-1 gone)
//   overlap.json    private JWKS: rsa-2 (RS256, signs), rsa-1, ec-1, ed-1
//   weak.json       private JWKS: rsa-1, ec-1, ed-1, rsa-weak (RSA 1024, RS256, never signs)
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const force = process.argv.includes('--force');

const specs = {
  'rsa-1': { type: 'rsa', options: { modulusLength: 2048 }, alg: 'RS256' },
  'rsa-2': { type: 'rsa', options: { modulusLength: 2048 }, alg: 'RS256' },
  'rsa-weak': { type: 'rsa', options: { modulusLength: 1024 }, alg: 'RS256' },
  'ec-1': { type: 'ec', options: { namedCurve: 'P-256' }, alg: 'ES256' },
  'ed-1': { type: 'ed25519', options: {}, alg: 'EdDSA' },
};

const sets = {
  'primary.json': ['rsa-1', 'ec-1', 'ed-1'],
  'rotated.json': ['rsa-2', 'ec-1', 'ed-1'],
  'overlap.json': ['rsa-2', 'rsa-1', 'ec-1', 'ed-1'],
  'weak.json': ['rsa-1', 'ec-1', 'ed-1', 'rsa-weak'],
};

const outputs = [
  ...Object.keys(specs).flatMap((kid) => [`${kid}.pem`, `${kid}.pub.pem`]),
  ...Object.keys(sets),
];
const existing = outputs.filter((file) => existsSync(join(here, file)));
if (existing.length && !force) {
  console.error(`refusing to overwrite ${existing.join(', ')} (pass --force)`);
  process.exit(1);
}

const jwks = {};
for (const [kid, { type, options, alg }] of Object.entries(specs)) {
  const { privateKey, publicKey } = generateKeyPairSync(type, options);
  writeFileSync(join(here, `${kid}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(here, `${kid}.pub.pem`), publicKey.export({ type: 'spki', format: 'pem' }));
  jwks[kid] = { kid, alg, use: 'sig', ...privateKey.export({ format: 'jwk' }) };
}
for (const [file, kids] of Object.entries(sets)) {
  const keys = kids.map((kid) => jwks[kid]);
  writeFileSync(join(here, file), `${JSON.stringify({ keys }, null, 2)}\n`);
}
console.log(`wrote ${outputs.join(' ')}`);
