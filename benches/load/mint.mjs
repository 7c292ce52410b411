// Static OpenID Provider files and access tokens for the load benchmark's bearer targets.
// Called by benches/load/run.sh; TEST-ONLY keys (tests/idp/keys), nothing leaves OUTDIR.
//
//   node benches/load/mint.mjs ISSUER AUDIENCE TTL_SECONDS OUTDIR [POOL_SIZE]
//
// Writes into OUTDIR (served as static files by the backend nginx):
//   openid-configuration.json  discovery document: issuer = ISSUER, jwks_uri = ISSUER/jwks.json
//   jwks.json                  public part of every key of tests/idp/keys/primary.json
//                              (rsa-1, ec-1, ed-1): private members d p q dp dq qi removed
//   token-rs256.jwt            access token signed with rsa-1.pem (kid rsa-1, RS256)
//   token-es256.jwt            access token signed with ec-1.pem (kid ec-1, ES256)
//   pool-rs256.txt             with POOL_SIZE > 0 (default 0: not written): POOL_SIZE distinct
//                              access tokens like token-rs256.jwt, one a line (each its own jti)
// Tokens: header typ at+jwt; claims iss, aud, sub, scope, client_id, jti, iat = now,
// exp = now + TTL_SECONDS.
//
// jose comes from tests/idp/node_modules (installed by `bash tests/setup.sh`); it is ESM-only, so
// it is imported by file path, relative to this file, rather than through NODE_PATH.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const keysDir = join(root, 'tests', 'idp', 'keys');
const joseEntry = join(root, 'tests', 'idp', 'node_modules', 'jose', 'dist', 'webapi', 'index.js');

function die(msg) {
  console.error(`mint.mjs: ${msg}`);
  process.exit(1);
}

const [issuer, audience, ttlArg, outDir, poolArg = '0'] = process.argv.slice(2);
if (!issuer || !audience || !ttlArg || !outDir) {
  die('usage: node mint.mjs ISSUER AUDIENCE TTL_SECONDS OUTDIR [POOL_SIZE]');
}
const ttl = Number(ttlArg);
if (!Number.isInteger(ttl) || ttl <= 0) die(`TTL_SECONDS must be a positive integer, got '${ttlArg}'`);
const poolSize = Number(poolArg);
if (!Number.isInteger(poolSize) || poolSize < 0) die(`POOL_SIZE must be a non-negative integer, got '${poolArg}'`);

let jose;
try {
  jose = await import(pathToFileURL(joseEntry).href);
} catch (err) {
  die(`cannot load jose from ${joseEntry} (run: bash tests/setup.sh): ${err.message}`);
}

mkdirSync(outDir, { recursive: true });

// Public JWKS: the private JWKS minus the private members.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
const privateJwks = JSON.parse(readFileSync(join(keysDir, 'primary.json'), 'utf8'));
const publicKeys = privateJwks.keys.map((jwk) => {
  const pub = { ...jwk };
  for (const m of PRIVATE_MEMBERS) delete pub[m];
  // Anything else secret (symmetric `k`, multi-prime `oth`) has no place in this file.
  if (pub.kty === 'oct' || 'k' in pub || 'oth' in pub) die(`unexpected key ${jwk.kid} in primary.json`);
  return pub;
});
writeFileSync(join(outDir, 'jwks.json'), `${JSON.stringify({ keys: publicKeys }, null, 2)}\n`);

writeFileSync(
  join(outDir, 'openid-configuration.json'),
  `${JSON.stringify(
    {
      issuer,
      jwks_uri: `${issuer}/jwks.json`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'],
    },
    null,
    2,
  )}\n`,
);

const now = Math.floor(Date.now() / 1000);
const mint = (t, key) =>
  new jose.SignJWT({ scope: 'bench.read', client_id: 'bench-client' })
    .setProtectedHeader({ alg: t.alg, kid: t.kid, typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject('bench-user')
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .sign(key);
const tokens = [
  { file: 'token-rs256.jwt', kid: 'rsa-1', alg: 'RS256', pem: 'rsa-1.pem', pool: poolSize },
  { file: 'token-es256.jwt', kid: 'ec-1', alg: 'ES256', pem: 'ec-1.pem', pool: 0 },
];
for (const t of tokens) {
  if (!publicKeys.some((k) => k.kid === t.kid && k.alg === t.alg)) die(`${t.kid} (${t.alg}) is not in the served JWKS`);
  const key = await jose.importPKCS8(readFileSync(join(keysDir, t.pem), 'utf8'), t.alg);
  writeFileSync(join(outDir, t.file), `${await mint(t, key)}\n`);
  if (t.pool > 0) {
    const pool = [];
    for (let i = 0; i < t.pool; i++) pool.push(await mint(t, key));
    writeFileSync(join(outDir, `pool-${t.alg.toLowerCase()}.txt`), `${pool.join('\n')}\n`);
  }
}
