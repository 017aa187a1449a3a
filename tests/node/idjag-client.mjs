// Enterprise-managed authorization with the official TypeScript MCP SDK (@modelcontextprotocol/client):
// its CrossAppAccessProvider discovers the authorization server from the MCP server's 401 and
// protected-resource metadata, asks the test's IdP for an ID-JAG with the SDK's own RFC 8693 token
// exchange (requestJwtAuthorizationGrant), exchanges it with the JWT bearer grant, and calls `echo`.
// Run by tests/tests/idjag.rs; prints one JSON line with what it saw.
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  requestJwtAuthorizationGrant,
} from '@modelcontextprotocol/client';

const { MCP_URL, ISSUER, IDP_TOKEN_ENDPOINT, SUBJECT, CLIENT_ID, CLIENT_SECRET } = process.env;
const seen = {};
const provider = new CrossAppAccessProvider({
  assertion: async (ctx) => {
    seen.authorizationServerUrl = ctx.authorizationServerUrl;
    seen.resourceUrl = ctx.resourceUrl;
    seen.scope = ctx.scope;
    const grant = await requestJwtAuthorizationGrant({
      tokenEndpoint: IDP_TOKEN_ENDPOINT,
      audience: ctx.authorizationServerUrl,
      resource: ctx.resourceUrl,
      idToken: SUBJECT,
      clientId: CLIENT_ID,
      clientSecret: 'unused-at-the-test-idp',
      scope: ctx.scope,
      fetchFn: ctx.fetchFn,
    });
    return grant.jwtAuthGrant;
  },
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  clientName: 'sallyport e2e cross-app access',
  expectedIssuer: ISSUER,
});
const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider });
const client = new Client({ name: 'sallyport-idjag-e2e', version: '1.0.0' });
await client.connect(transport);
const result = await client.callTool({ name: 'echo', arguments: { message: 'hello from the TypeScript SDK' } });
seen.text = JSON.stringify(result.content);
seen.tokenType = provider.tokens()?.token_type;
seen.refreshToken = provider.tokens()?.refresh_token ?? null;
await client.close();
console.log(JSON.stringify(seen));
