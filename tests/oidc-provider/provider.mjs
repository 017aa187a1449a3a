// A real OpenID provider for Sallyport's end-to-end tests: node-oidc-provider with its
// development login and consent pages (any password; the login name picks an account below).
// Configured by environment: OP_PORT, OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URIS (space-
// separated), OP_ACCOUNTS (a JSON file of more accounts, read again on every lookup, so that a
// test can change what the provider says about a user, as an administrator would at a real one),
// OP_REVOCATION=1 (RFC 7009 and RFC 7662 on: the upstream of an `oauth2` route); every start makes
// a new signing key (restart to rotate).
// Prints "listening <issuer>" once it serves.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT || 0);
const issuer = `http://127.0.0.1:${port}`;

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['mcp-users', 'staff'], name: 'Alice Example', preferred_username: 'alice' },
  bob: { email: 'bob@example.com', email_verified: false, groups: ['mcp-users'], name: 'Bob Unverified', preferred_username: 'bob' },
  carol: { email: 'carol@elsewhere.test', email_verified: true, groups: ['mcp-users'], name: 'Carol Elsewhere', preferred_username: 'carol' },
  dave: { email: 'dave@example.com', email_verified: true, groups: ['staff'], name: 'Dave Nogroup', preferred_username: 'dave' },
};


const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = privateKey.export({ format: 'jwk' });
jwk.kid = `op-${createHash('sha256').update(jwk.x).digest('hex').slice(0, 12)}`;
jwk.use = 'sig';
jwk.alg = 'ES256';

const configuration = {
  clients: [{
    client_id: process.env.OP_CLIENT_ID,
    client_secret: process.env.OP_CLIENT_SECRET,
    redirect_uris: (process.env.OP_REDIRECT_URIS || '').split(' ').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // the claims come from the userinfo endpoint unless asked for in the ID token: Sallyport
  // must then call userinfo (the default of OpenID Connect Core §5.4 for a code flow)
  conformIdTokenClaims: process.env.OP_CLAIMS_IN_ID_TOKEN !== '1',
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: process.env.OP_REVOCATION === '1' },
    introspection: { enabled: process.env.OP_REVOCATION === '1' },
  },
  cookies: { keys: ['sallyport-test-cookie-key'] },
  async findAccount(ctx, id) {
    const more = process.env.OP_ACCOUNTS ? JSON.parse(readFileSync(process.env.OP_ACCOUNTS, 'utf8')) : {};
    const account = more[id] || accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
};

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer} kid ${jwk.kid}`);
});
