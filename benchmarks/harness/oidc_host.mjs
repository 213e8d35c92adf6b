// panva's oidc-provider, hosted for the harness's OIDC figure (benchmarks/harness/run.py, fig_oidc).
//
//     NODE_PATH=.bench/node/node_modules node benchmarks/harness/oidc_host.mjs PORT
//
// One client (mockbench / mockbench-secret, redirect http://127.0.0.1/callback, code flow, PKCE S256,
// client_secret_basic) and a non-interactive login: interactions.url points at /interaction/:uid, which
// logs in the login_hint (or "dr"), creates a Grant with the requested scopes and finishes the
// interaction, so a client just follows redirects: authorize -> interaction -> resume -> callback?code.
// Loopback only. Listens on 127.0.0.1:PORT; any answer on / means ready.
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const entry = require.resolve('oidc-provider', { paths: (process.env.NODE_PATH || '').split(path.delimiter) });
const { default: Provider } = await import(entry);

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'mockbench', client_secret: 'mockbench-secret', redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  claims: { openid: ['sub'], profile: ['family_name', 'given_name'] },
  scopes: ['openid', 'profile', 'scope_all'],
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['mockbench-harness-cookie-key'] },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub, family_name: 'MARTIN', given_name: 'Jeanne' }; } };
  },
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  if (!req.url.startsWith('/interaction/')) return callback(req, res);
  try {
    const { params } = await provider.interactionDetails(req, res);
    const accountId = params.login_hint || 'dr';
    const grant = new provider.Grant({ accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } },
      { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
