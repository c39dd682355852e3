// Sign-in: OAuth 2 authorization code with PKCE (RFC 7636) against the issuer config.json names
// (the local issuer, or Cognito's managed login). The ID token lives in sessionStorage until it
// expires, and never longer; nothing goes to localStorage.

const TOKEN_KEY = "reminders.token";
const PENDING_KEY = "reminders.sign-in";

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// The page's own URL, without query or fragment: where the issuer sends the browser back.
export function redirectUri() {
  return location.origin + location.pathname;
}

export async function beginSignIn(config) {
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(config.authorize_url);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope,
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

function claimsOf(token) {
  const payload = token.split(".")[1] || "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(decodeURIComponent(escape(json)));
}

// Back from the issuer with ?code=...&state=...: trade the code for a token, then clean the URL.
export async function finishSignIn(config) {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return null;
  history.replaceState(null, "", redirectUri());
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  if (error) throw new Error(`Sign-in failed: ${params.get("error_description") || error}`);
  if (!pending || pending.state !== params.get("state")) throw new Error("Sign-in failed: the answer is not for this page; sign in again.");
  const reply = await fetch(config.token_url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: pending.verifier,
    }),
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok || !body.id_token) throw new Error(`Sign-in failed: ${body.error_description || body.error || reply.status}`);
  return store(body.id_token);
}

function store(token) {
  const claims = claimsOf(token);
  const session = { token, email: claims.email || claims.sub, expires: claims.exp * 1000 };
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
  return session;
}

// The session kept in this tab, if its token still lives.
export function currentSession() {
  const session = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
  if (!session || session.expires <= Date.now() + 5000) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return session;
}

// Drop the token now (it expired, or the API refused it).
export function forgetSession() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function signOut(config) {
  forgetSession();
  if (config.logout_url) {
    const url = new URL(config.logout_url);
    url.search = new URLSearchParams({ client_id: config.client_id, logout_uri: redirectUri() }).toString();
    location.assign(url.toString());
  }
}
