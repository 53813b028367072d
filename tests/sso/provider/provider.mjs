// The OpenID Provider of the single sign-on tests: the certified `oidc-provider` package on loopback, started by
// tests/sso/harness.py. `make oidc-provider` installs the package (package.json, package-lock.json) under
// .cache/oidc-provider/; OIDC_PROVIDER_HOME names that directory.
//
// Environment: PORT, REDIRECT_URIS (comma-separated, for every client), CLIENT_SECRET, ACCOUNTS_FILE.
// ACCOUNTS_FILE is JSON, read afresh at every sign-in: {"<login name>": {"sub": ..., "email": ..., "groups": [...]}},
// so a test chooses who signs in and with which groups by writing it. The login form takes the login name.
//
// Three clients share the secret and the redirect URIs. `coderauth` is a well-behaved registration. The other two
// stand for a misconfigured or misbehaving provider, with ID tokens correctly signed by the provider's key:
//   coderauth-wrong-audience  ID tokens name another application in `aud`
//   coderauth-clock-behind    the provider's clock is an hour slow, so its ID tokens expired an hour ago
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const home = process.env.OIDC_PROVIDER_HOME;
const resolve = (name) => pathToFileURL(createRequire(join(home, 'package.json')).resolve(name)).href;
const { default: Provider } = await import(resolve('oidc-provider'));
const jose = await import(pathToFileURL(join(home, 'node_modules', 'jose', 'dist', 'webapi', 'index.js')).href);

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const redirectUris = process.env.REDIRECT_URIS.split(',');
const accountsFile = process.env.ACCOUNTS_FILE;

// A fresh signing key at every start: a restarted provider signs with a key (and `kid`) its clients have not seen.
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

const QUIRKS = {
  'coderauth-wrong-audience': (claims) => ({ ...claims, aud: 'another-application' }),
  'coderauth-clock-behind': (claims) => ({ ...claims, iat: claims.iat - 3600, exp: claims.exp - 3600 }),
};

function accounts() {
  return JSON.parse(readFileSync(accountsFile, 'utf8'));
}

function accountBySub(sub) {
  return Object.values(accounts()).find((account) => account.sub === sub);
}

const configuration = {
  clients: ['coderauth', ...Object.keys(QUIRKS)].map((clientId) => ({
    client_id: clientId,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Every client must send a PKCE challenge: a client that does not is refused at the authorization endpoint.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 300, AuthorizationCode: 60, Grant: 3600, IdToken: 300, Interaction: 600, Session: 3600 },
  async findAccount(ctx, sub) {
    const account = accountBySub(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { sub: _, ...claims } = account;
        return { sub, email_verified: true, ...claims };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);

const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issueWithQuirk(options) {
  const token = await issue.call(this, options);
  const quirk = QUIRKS[this.client?.clientId];
  if (!quirk || options?.use !== 'idtoken') return token;
  const { kid, alg } = jose.decodeProtectedHeader(token);
  return new jose.SignJWT(quirk(jose.decodeJwt(token))).setProtectedHeader({ alg, kid }).sign(privateKey);
};

const htmlEscape = (text) => String(text).replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);

function loginPage(uid, client, problem = '') {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><h1>Test identity provider</h1><p>Sign in to ${htmlEscape(client)}</p>
${problem ? `<p role="alert">${htmlEscape(problem)}</p>` : ''}
<form method="post" action="/interaction/${htmlEscape(uid)}/login">
<label for="login">Login name</label><input id="login" name="login" autocomplete="off" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Continue</button></form>
<form method="post" action="/interaction/${htmlEscape(uid)}/abort"><button type="submit">Cancel</button></form>
</body></html>`;
}

async function formBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(html);
}

async function interaction(req, res, uid, step) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  const clientId = details.params.client_id;
  if (req.method === 'GET' && !step) return send(res, 200, loginPage(uid, clientId));
  if (req.method !== 'POST') return send(res, 405, 'method not allowed');
  if (step === '/abort') {
    const result = { error: 'access_denied', error_description: 'The user cancelled the sign-in.' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  const login = (await formBody(req)).get('login') ?? '';
  const account = accounts()[login];
  if (!account) return send(res, 200, loginPage(uid, clientId, `No account named ${login}.`));
  const grant = new provider.Grant({ accountId: account.sub, clientId });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  const result = { login: { accountId: account.sub }, consent: { grantId } };
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
createServer((req, res) => {
  const match = new URL(req.url, issuer).pathname.match(/^\/interaction\/([\w-]+)(\/login|\/abort)?$/);
  if (!match) return handle(req, res);
  return interaction(req, res, match[1], match[2]).catch((error) => send(res, 500, htmlEscape(error.message)));
}).listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
