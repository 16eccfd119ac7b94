// A real OpenID Connect provider (panva's oidc-provider) on loopback, for Caspix's end-to-end tests.
//
// Started by tests/oidc_idp.py as `node provider.mjs CONFIG.json`; everything it knows comes from
// that file (client, signing keys, users). It binds 127.0.0.1 on the configured port (0: any free
// one), takes http://127.0.0.1:<port> as its issuer, writes {"issuer", "port"} to the ready file,
// and exits when its standard input closes, so a killed test run leaves no provider behind.
//
// Sign-in is a plain HTML form (no JavaScript needed) at /interaction/<uid>; consent is granted
// without a screen; RP-initiated logout submits itself unless `logout_prompt` is set. No page
// loads anything from another origin: the browser tests refuse such requests.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((user) => [user.username, user]));
const accounts = new Map(config.users.map((user) => [user.sub, user]));

function log(...parts) {
  console.log(new Date().toISOString(), ...parts);
}

function escape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escape(title)}</title><link rel="icon" href="data:,"></head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

function loginPage(uid, details, { username = '', error = '' } = {}) {
  const { params, prompt } = details;
  return page('Sign in - Test IdP', `
<h1>Sign in to the test IdP</h1>
<p id="client">Client: <code>${escape(params.client_id)}</code>; asked for: <code>${escape(prompt.reasons.join(', '))}</code></p>
${error ? `<p id="error" role="alert">${escape(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label for="username">Username</label>
  <input id="username" name="username" value="${escape(username || params.login_hint)}" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password">
  <fieldset>
    <legend>This sign-in only (blank: the user's own)</legend>
    <label for="acr">acr</label> <input id="acr" name="acr">
    <label for="amr">amr (comma-separated)</label> <input id="amr" name="amr">
  </fieldset>
  <button id="sign-in" type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="/interaction/${escape(uid)}/abort">
  <button id="cancel" type="submit">Cancel</button>
</form>
<p>Users: ${[...users.keys()].map((name) => `<code>${escape(name)}</code>`).join(', ')}</p>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

function loginResult(user, form) {
  const acr = form.get('acr')?.trim() || user.acr || undefined;
  const amrText = form.get('amr')?.trim();
  const amr = amrText ? amrText.split(',').map((value) => value.trim()).filter(Boolean) : user.amr;
  return { accountId: user.sub, acr, amr: amr?.length ? amr : undefined, remember: true };
}

// Grants what the request asks for: the client is first-party, consent is never shown.
async function grantAll(provider, { accountId, clientId, grantId, scope, claims }) {
  const grant = (grantId && (await provider.Grant.find(grantId))) || new provider.Grant({ accountId, clientId });
  if (scope) grant.addOIDCScope(scope);
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return;
  }
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      send(res, 200, loginPage(uid, details));
      return;
    }
    // consent (prompt=consent, or claims not granted yet): granted on the spot
    const grant = await grantAll(provider, {
      accountId: session.accountId,
      clientId: params.client_id,
      grantId: details.grantId,
      scope: prompt.details.missingOIDCScope?.join(' ') || params.scope,
      claims: prompt.details.missingOIDCClaims || [],
    });
    await provider.interactionFinished(req, res, { consent: { grantId: grant.jti } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'POST' && action === 'abort') {
    const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const username = form.get('username')?.trim() ?? '';
    const user = users.get(username);
    if (!user || (user.password && form.get('password') !== user.password)) {
      log('sign-in refused for', JSON.stringify(username));
      send(res, 200, loginPage(uid, details, { username, error: 'Unknown user or wrong password' }));
      return;
    }
    const login = loginResult(user, form);
    log('sign-in', user.username, 'acr', login.acr, 'amr', login.amr);
    await provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
    return;
  }
  send(res, 405, page('Error', '<p id="error">method not allowed</p>'));
}

function logoutSource(ctx, form) {
  // The confirmation oidc-provider insists on, answered "yes" at once unless asked to wait.
  const withYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  const submit = config.logout_prompt ? '' : "<script>document.getElementById('op.logoutForm').submit();</script>";
  ctx.body = page('Sign out - Test IdP', `
<h1>Sign out of the test IdP?</h1>
${withYes}
<button id="sign-out" type="submit" form="op.logoutForm">Sign out</button>
${submit}`);
}

function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out - Test IdP', '<h1 id="signed-out">Signed out of the test IdP</h1>');
}

function renderError(ctx, out) {
  ctx.type = 'html';
  const lines = Object.entries(out).map(([key, value]) => `<p><strong>${escape(key)}</strong>: ${escape(value)}</p>`);
  ctx.body = page('Error - Test IdP', `<h1>Test IdP error</h1>\n<div id="error">${lines.join('\n')}</div>`);
}

function build(issuer) {
  const acrValues = new Set(config.acr_values ?? []);
  for (const user of config.users) if (user.acr) acrValues.add(user.acr);
  const ttl = config.ttl ?? {};
  const cookieOptions = { httpOnly: true, sameSite: 'lax', signed: true };

  const provider = new Provider(issuer, {
    clients: [config.client],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: config.client.id_token_signed_response_alg,
      token_endpoint_auth_method: 'client_secret_post',
    },
    jwks: config.jwks,
    cookies: { keys: config.cookie_keys, long: cookieOptions, short: cookieOptions },
    responseTypes: ['code'],
    scopes: ['openid'],
    // acr, amr and auth_time ride on the openid scope, so every ID token carries them when set.
    claims: {
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      caspix: ['caspix_roles', 'caspix_teams'],
    },
    acrValues: [...acrValues],
    // Claims asked for by scope go in the ID token too, not only to userinfo.
    conformIdTokenClaims: false,
    pkce: { methods: ['S256'], required: () => true },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      return grantAll(oidc.provider, {
        accountId: oidc.account.accountId,
        clientId: oidc.client.clientId,
        grantId: oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId),
        scope: [...oidc.requestParamOIDCScopes].join(' '),
        claims: [...oidc.requestParamClaims],
      });
    },
    async findAccount(ctx, sub) {
      const user = accounts.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: user.email,
            email_verified: true,
            name: user.name,
            preferred_username: user.username,
            caspix_roles: user.caspix_roles,
            caspix_teams: user.caspix_teams,
          };
        },
      };
    },
    ttl: {
      AccessToken: ttl.access_token ?? 600,
      AuthorizationCode: ttl.authorization_code ?? 60,
      IdToken: ttl.id_token ?? 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    renderError,
  });
  for (const event of [
    'server_error', 'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error',
    'discovery.error', 'jwks.error', 'check_session.error', 'revocation.error',
  ]) {
    provider.on(event, (ctx, error) => {
      log(event, error?.name, error?.message, error?.error_description ?? '', error?.error_detail ?? '');
    });
  }
  return provider;
}

const server = createServer();
server.listen(config.port ?? 0, '127.0.0.1', async () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = build(issuer);
  // Static clients are validated on first use: fail now, in the log, rather than at /auth.
  try {
    await provider.Client.find(config.client.client_id);
  } catch (error) {
    log('invalid client:', error?.message, error?.error_description ?? '');
    process.exit(1);
  }
  const callback = provider.callback();
  server.on('request', (req, res) => {
    res.on('finish', () => log(req.method, req.url.split('?')[0], res.statusCode));
    const match = /^\/interaction\/([\w-]+)(?:\/(login|abort))?\/?(?:\?.*)?$/.exec(req.url);
    if (!match) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, match[1], match[2]).catch((error) => {
      log('interaction error', error?.name, error?.message);
      if (!res.headersSent) send(res, 400, page('Error', `<p id="error">${escape(error?.message)}</p>`));
    });
  });
  if (config.ready_file) {
    writeFileSync(`${config.ready_file}.tmp`, JSON.stringify({ issuer, port }));
    renameSync(`${config.ready_file}.tmp`, config.ready_file);
  }
  log('listening', issuer);
});

// The harness holds our standard input open; when it goes (the test run ended or died), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
