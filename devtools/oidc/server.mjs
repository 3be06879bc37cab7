// A real OpenID Connect provider for development and tests: panva/oidc-provider (pinned in
// package.json / package-lock.json) on loopback, with local test accounts mapped to Unix users.
//
//   node server.mjs CONFIG.json
//
// CONFIG: {"host": "127.0.0.1", "port": 0, "audience": "stager-api",
//          "access_token_ttl": 300, "clients": [{client_id, client_secret, redirect_uris,
//          post_logout_redirect_uris}], "accounts": {"alice": {"password": "...",
//          "unix_user": "stgalice", "name": "Alice", "email": "alice@example.org",
//          "groups": ["stager-admins"]}}}
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` on stdout once it listens.
//
// The login form is this file's own (the library's dev interactions accept any name with no
// password, so they are switched off); every value shown in it is HTML-escaped. Consent is
// implied for the configured first-party clients. Access tokens are JWTs (RS256) for the
// audience, carrying `preferred_username` = the account's Unix user, which is what the API
// reads (services/api/auth.py), and `groups` when the account has any (the API's admin roles).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { URLSearchParams } from 'node:url';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};
const audience = config.audience || 'stager-api';
// Resource indicators must be absolute URIs; the token's `aud` is still `audience`.
const resource = config.resource || `urn:${audience}`;

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function sameSecret(given, expected) {
  const a = crypto.createHash('sha256').update(String(given)).digest();
  const b = crypto.createHash('sha256').update(String(expected)).digest();
  return crypto.timingSafeEqual(a, b);
}

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 16384) { reject(new Error('body too large')); req.destroy(); }
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

function loginPage(uid, clientId, error, login) {
  const message = error ? `<p role="alert" class="error">${escapeHtml(error)}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - test identity provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:24rem;margin:4rem auto}label{display:block;margin-top:1rem}
input{width:100%;padding:.4rem;font-size:1rem}button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}
.error{color:#a00000}</style></head>
<body><main><h1>Sign in</h1><p>to <strong>${escapeHtml(clientId)}</strong> (test identity provider)</p>
${message}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="login">User name</label><input id="login" name="login" required value="${escapeHtml(login || '')}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit">Sign in</button></form></main></body></html>`;
}

// Origins the clients are redirected to (for the login form's form-action).
const redirectOrigins = [...new Set((config.clients || []).flatMap((c) => c.redirect_uris || [])
  .map((u) => new URL(u).origin))].join(' ');

const server = http.createServer();
server.listen(config.port || 0, config.host || '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://${config.host || '127.0.0.1'}:${port}`;

  const provider = new Provider(issuer, {
    clients: (config.clients || []).map((c) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
    },
    ttl: {
      AccessToken: config.access_token_ttl || 300,
      IdToken: 3600,
      RefreshToken: 8 * 3600,
      Session: 8 * 3600,
      Interaction: 600,
      Grant: 8 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, requested) => {
          if (requested !== resource) throw new Error(`unknown resource ${requested}`);
          return { scope: 'openid profile email offline_access', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    extraTokenClaims: async (_ctx, token) => {
      const account = accounts[token.accountId];
      if (!account) return {};
      const groups = Array.isArray(account.groups) && account.groups.length ? { groups: account.groups } : {};
      return { preferred_username: account.unix_user, ...groups };
    },
    async findAccount(_ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: account.name || id, preferred_username: account.unix_user, email: account.email };
        },
      };
    },
    async loadExistingGrant(ctx) {
      const clientId = ctx.oidc.client.clientId;
      const existing = ctx.oidc.session.grantIdFor(clientId);
      if (existing) {
        const found = await ctx.oidc.provider.Grant.find(existing);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({ clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email offline_access');
      grant.addResourceScope(resource, 'openid profile email offline_access');
      await grant.save();
      ctx.oidc.session.ensureClientContainer(clientId);
      ctx.oidc.session.grantIdFor(clientId, grant.jti);
      return grant;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body><main><h1>Error</h1><p>${escapeHtml(out.error)}: ${escapeHtml(out.error_description || '')}</p></main></body></html>`;
    },
  });
  provider.proxy = false;

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) { callback(req, res); return; }
    res.setHeader('Cache-Control', 'no-store');
    // The login form's POST ends in a redirect to the client: browsers apply form-action to
    // every hop of it, so the clients' redirect origins must be allowed too.
    res.setHeader('Content-Security-Policy', `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${redirectOrigins}; frame-ancestors 'none'`);
    try {
      const details = await provider.interactionDetails(req, res);
      if (match[1] !== details.uid) throw new Error('interaction mismatch');
      if (req.method === 'GET' && !match[2]) {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(loginPage(details.uid, details.params.client_id, '', ''));
        return;
      }
      if (req.method === 'POST' && match[2]) {
        const form = await readBody(req);
        const login = form.get('login') || '';
        const account = Object.prototype.hasOwnProperty.call(accounts, login) ? accounts[login] : null;
        const ok = sameSecret(form.get('password') || '', account ? account.password : crypto.randomUUID());
        if (!account || !ok) {
          res.statusCode = 401;
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(loginPage(details.uid, details.params.client_id, 'Wrong user name or password.', login));
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
        return;
      }
      res.statusCode = 405;
      res.end();
    } catch (err) {
      res.statusCode = 400;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body><main><p>${escapeHtml(err.message)}: start again from the application.</p></main></body></html>`);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
