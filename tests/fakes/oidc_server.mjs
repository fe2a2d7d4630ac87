// A real OAuth 2.1 / OpenID Connect authorization server for the tests: panva's
// oidc-provider (from .ci/node), on 127.0.0.1:$PORT. Metadata, JWKS, dynamic client
// registration, the authorization-code flow with PKCE through its development login and
// consent pages (any user name signs in), JWT access tokens for the resource each client names
// (RFC 8707), opaque ones for the resources in $OPAQUE_RESOURCES, introspection and revocation.
//
// POST /__rotate {"keys": [...]} rotates the signing keys (the first signs) without a
// restart: a new provider with the same configuration on the same in-memory storage.
import http from 'node:http';

const { default: Provider } = await import(process.env.OIDC_PROVIDER_MODULE);

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const opaque = new Set(JSON.parse(process.env.OPAQUE_RESOURCES || '[]'));
const SCOPES = 'apex:read apex:write apex:research';

function configuration(keys) {
  return {
    jwks: { keys },
    clients: [
      {
        client_id: 'test-client',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
      {
        client_id: 'apex-mcp',
        client_secret: process.env.INTROSPECTION_SECRET,
        redirect_uris: [],
        grant_types: [],
        response_types: [],
      },
    ],
    scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: SCOPES,
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: opaque.has(resource) ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  };
}

let provider = new Provider(issuer, configuration(JSON.parse(process.env.KEYS)));

async function rotate(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  provider = new Provider(issuer, configuration(JSON.parse(body).keys));
  res.writeHead(204).end();
}

http
  .createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/__rotate') return rotate(req, res);
    return provider.callback()(req, res);
  })
  .listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
