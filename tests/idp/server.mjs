// TEST-ONLY OpenID Provider for Portcullis' end-to-end tests: panva's oidc-provider on loopback,
// plain HTTP, in-memory storage (everything is forgotten on exit).
//
//   node tests/idp/server.mjs CONFIG.json
//
// Prints exactly one line `READY <issuer>` on stdout once it accepts connections; everything else
// (request log, provider warnings and errors) goes to stderr. SIGTERM/SIGINT: close, exit 0.
//
// CONFIG.json (written by tests/e2e/support/idp.rs; every key optional unless marked):
//   port                   0 = pick a free one (the READY line names it); issuer is
//                          http://127.0.0.1:<port>
//   keys        (required) path of a private JWKS file (tests/idp/keys/*.json); the first RSA /
//                          EC / OKP key of the file signs RS256 / ES256 / EdDSA
//   access_token_ttl       seconds, access tokens of every grant (default 300)
//   id_token_ttl           seconds (default 300)
//   refresh_token_ttl      seconds (default 3600)
//   clients                oidc-provider client metadata objects, passed as they are; one extra
//                          property `token_claims` (object) is added to the client's access
//                          tokens issued by the client_credentials grant
//   resources              { "<resource indicator>": { alg, scope, format, access_token_ttl,
//                          audience, kid } } — resource servers; `format` "jwt" (default) or
//                          "opaque"; `alg` RS256 (default), PS256, ES256, EdDSA; `audience`
//                          defaults to the indicator; `kid` pins a signing key. Default: the
//                          three resources of DEFAULT_RESOURCES below.
//   default_resource       resource used when a request names none (default null: no resource,
//                          so the access token is opaque and introspectable)
//   use_granted_resource   token endpoint without `resource` uses the one granted at the
//                          authorization endpoint (default true)
//   accounts               { "<sub>": { claim: value } } — overrides of the generated claims
//   skip_consent           grant whatever is asked without a consent screen (default true)
//   refresh_token_always   issue refresh tokens to clients allowed the refresh_token grant even
//                          without offline_access (default true)
//   conform_id_token_claims  oidc-provider's conformIdTokenClaims (default false: the ID token
//                          carries the claims of the granted scopes)
//   pkce_required          true / false; absent: oidc-provider's default (public clients only)
//   exit_with_stdin        exit when stdin closes, so a killed parent never leaves us behind
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const DEFAULT_RESOURCES = {
  'urn:portcullis:api': { alg: 'RS256' },
  'urn:portcullis:api-es256': { alg: 'ES256' },
  'urn:portcullis:api-eddsa': { alg: 'EdDSA' },
};
const RESOURCE_SCOPE = 'orders.read orders.write';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs CONFIG.json');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
if (!cfg.keys) {
  console.error(`${configPath}: "keys" (a private JWKS file) is required`);
  process.exit(2);
}
const jwks = JSON.parse(readFileSync(cfg.keys, 'utf8'));
const ttl = {
  access: cfg.access_token_ttl ?? 300,
  id: cfg.id_token_ttl ?? 300,
  refresh: cfg.refresh_token_ttl ?? 3600,
};
const resources = cfg.resources ?? DEFAULT_RESOURCES;
const accounts = cfg.accounts ?? {};

function accountClaims(sub) {
  return {
    sub,
    email: `${sub}@corp.example`,
    email_verified: sub !== 'mallory',
    name: sub,
    preferred_username: sub,
    groups: ['staff'],
    department: 'eng',
    region: 'eu',
    ...accounts[sub],
  };
}

// Claims an access token carries besides the standard ones (they also come back from
// introspection): the end user's for user tokens, the client's `token_claims` otherwise.
async function extraTokenClaims(ctx, token) {
  if (token.accountId) {
    const {
      email, email_verified, groups, department, region,
    } = accountClaims(token.accountId);
    return {
      email, email_verified, groups, department, region,
    };
  }
  const client = ctx?.oidc?.client?.clientId === token.clientId
    ? ctx.oidc.client
    : await provider.Client.find(token.clientId);
  const claims = client?.token_claims;
  return claims && Object.keys(claims).length ? { ...claims } : undefined;
}

function resourceServerInfo(indicator) {
  const rs = resources[indicator];
  if (!rs) {
    throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  }
  const format = rs.format ?? 'jwt';
  return {
    scope: rs.scope ?? RESOURCE_SCOPE,
    audience: rs.audience ?? indicator,
    accessTokenTTL: rs.access_token_ttl ?? ttl.access,
    accessTokenFormat: format,
    ...(format === 'jwt' ? { jwt: { sign: { alg: rs.alg ?? 'RS256', ...(rs.kid ? { kid: rs.kid } : {}) } } } : {}),
  };
}

// Skip consent: grant what is asked (the test clients are all first party).
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (cfg.skip_consent === false) {
    return grant;
  }
  grant ||= new oidc.provider.Grant({
    accountId: oidc.session.accountId,
    clientId: oidc.client.clientId,
  });
  const scopes = [...oidc.requestParamOIDCScopes];
  if (scopes.length) grant.addOIDCScope(scopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [indicator, rs] of Object.entries(oidc.resourceServers)) {
    const wanted = [...oidc.requestParamScopes].filter((s) => rs.scopes.has(s));
    if (wanted.length) grant.addResourceScope(indicator, wanted.join(' '));
  }
  await grant.save();
  return grant;
}

const configuration = {
  jwks,
  clients: cfg.clients ?? [],
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'RS256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  extraClientMetadata: {
    properties: ['token_claims'],
    validator(_ctx, key, value) {
      if (key === 'token_claims' && value !== undefined
        && (value === null || typeof value !== 'object' || Array.isArray(value))) {
        throw new errors.InvalidClientMetadata('token_claims must be an object');
      }
    },
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'orders.read', 'orders.write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups', 'department', 'region'],
  },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return accountClaims(sub);
      },
    };
  },
  conformIdTokenClaims: cfg.conform_id_token_claims ?? false,
  extraTokenClaims,
  loadExistingGrant,
  issueRefreshToken(_ctx, client, source) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    return cfg.refresh_token_always !== false || source.scopes.has('offline_access');
  },
  ...(typeof cfg.pkce_required === 'boolean'
    ? { pkce: { required: () => cfg.pkce_required } }
    : {}),
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.access,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.access,
    IdToken: () => ttl.id,
    RefreshToken: () => ttl.refresh,
    AuthorizationCode: () => 60,
    Interaction: () => 600,
    Session: () => ttl.refresh,
    Grant: () => ttl.refresh,
  },
  cookies: {
    // Fixed, test-only: signs the provider's own cookies.
    keys: ['portcullis-test-idp-cookie-key-not-a-secret'],
  },
  // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection, by its own
  // dispatcher); the relying parties of these tests (back-channel logout, jwks_uri) are all on
  // loopback, so drop that dispatcher.
  fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Any authenticated client may introspect any token (the gateway introspects tokens
      // other clients obtained).
      allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none',
    },
    revocation: {
      enabled: true,
      // Any authenticated client may revoke any token (tests revoke through the `gateway` client).
      allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none',
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? cfg.default_resource ?? undefined,
      useGrantedResource: async () => cfg.use_granted_resource ?? true,
      getResourceServerInfo: async (_ctx, indicator) => resourceServerInfo(indicator),
    },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
};

const server = createServer();
server.keepAliveTimeout = 5000;

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (cfg.exit_with_stdin) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

let provider;
server.listen(cfg.port ?? 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, configuration);
  provider.use(async (ctx, next) => {
    const started = Date.now();
    await next();
    console.error(`idp: ${ctx.method} ${ctx.path} ${ctx.status} ${Date.now() - started}ms`);
  });
  for (const event of ['server_error', 'grant.error', 'introspection.error', 'revocation.error',
    'backchannel.error', 'end_session.error', 'authorization.error']) {
    provider.on(event, (_ctx, err) => {
      const detail = err?.error_description ?? err?.cause?.message ?? err?.cause?.code;
      console.error(`idp: ${event}: ${err?.message}${detail ? ` (${detail})` : ''}`);
    });
  }
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});
server.on('error', (err) => {
  console.error(`idp: cannot listen: ${err.message}`);
  process.exit(1);
});
