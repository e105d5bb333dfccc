// Portico's browser SDK. The protocol is oauth4webapi's (discovery, PKCE, the authorization
// response, the token and revocation requests, ID token validation); this adds what a
// single-page app of a suite needs on top: login transactions keyed by state, an idempotent
// callback, one refresh across tabs, cross-tab events, tenants, popups and hand-off.
import * as oauth from 'oauth4webapi';
import { PorticoError, reasonOf } from './errors.js';
import { IndexedDbStore, type KeyValueStore, type LoginTransaction, MemoryStore, Store, type TokenSet, safeReturnTo } from './store.js';

export { PorticoError, type PorticoErrorReason } from './errors.js';
export { IndexedDbStore, type KeyValueStore, MemoryStore, type TokenSet, safeReturnTo } from './store.js';

export interface PorticoOptions {
  /** Portico's issuer URL, exactly as its discovery document names it. */
  issuer: string;
  /** This app's public client id. */
  clientId: string;
  /** This app's registered redirect URI (its callback page calls `handleRedirectCallback`). */
  redirectUri: string;
  /** The product the tokens are for (its audience), when not the client's own. */
  audience?: string;
  /** Default `openid profile email offline_access`. */
  scope?: string;
  /** Where `logout({ everywhere: true })` sends the browser back to (registered). */
  postLogoutRedirectUri?: string;
  /** Where the refresh token and the session are kept, shared by every tab (default IndexedDB;
   * never `sessionStorage`, which `window.open` copies into a new tab and so forks a rotation). */
  storage?: KeyValueStore;
  /** How long a silent attempt may take (default 10 s) and a popup (default 5 min). */
  silentTimeoutMs?: number;
  popupTimeoutMs?: number;
  /** An access token expiring within this many seconds is refreshed first (default 30). */
  expiryLeewaySeconds?: number;
  /** The product keeps one session per browser: a newer one signs this tab out. */
  singleSession?: boolean;
  /** This product's backend endpoint that answers `{ url }` for a hand-off (`openProduct`). */
  handoffEndpoint?: string;
}

export interface LoginOptions {
  /** A same-origin path to come back to (anything else becomes `/`); travels in the stored
   * transaction, never in the URL. */
  returnTo?: string;
  /** The tenant: its slug, id or handle. */
  organization?: string;
  /** `none` tries without showing anything (a top-level redirect); `login` asks again. */
  prompt?: 'none' | 'login' | 'consent' | 'select_account';
  loginHint?: string;
}

export interface User {
  sub: string;
  name?: string;
  email?: string;
  email_verified?: boolean;
  [claim: string]: unknown;
}

/** What `onAuthStateChange` reports. Events carry no token, ever. */
export type AuthEvent =
  | { type: 'signed_in'; tenant?: string }
  | { type: 'token_refreshed'; tenant?: string }
  | { type: 'organization_switched'; tenant?: string }
  | { type: 'signed_out' }
  | { type: 'session_replaced' };

type Broadcast = AuthEvent | { type: 'session_started'; sid: string } | { type: 'popup_done'; state: string; error?: string };

const DEFAULT_SCOPE = 'openid profile email offline_access';
/** A popup that reads as closed this soon after it left for Portico was cut off by the opener's
 * `Cross-Origin-Opener-Policy` (it goes on, and reports through the redirect URI), not closed by
 * the user: a user who closes it that fast waits for `popupTimeoutMs`. */
const SEVERED_WITHIN_MS = 5000;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Callbacks in progress in this page, across instances (a double mount makes two). */
const callbacksInPage = new Map<string, Promise<CallbackResult>>();

interface CallbackResult {
  returnTo: string;
  popup: boolean;
}

export function createPortico(options: PorticoOptions): Portico {
  return new Portico(options);
}

export class Portico {
  private readonly o: Required<Pick<PorticoOptions, 'scope' | 'silentTimeoutMs' | 'popupTimeoutMs' | 'expiryLeewaySeconds'>> & PorticoOptions;
  private readonly client: oauth.Client;
  private readonly store: Store;
  private readonly issuer: URL;
  private metadata?: Promise<oauth.AuthorizationServer>;
  /** Access tokens of this tab, by (audience, tenant). */
  private readonly memory = new Map<string, TokenSet>();
  /** Refreshes in flight in this tab, by (audience, tenant): one at a time. */
  private readonly inflight = new Map<string, Promise<TokenSet>>();
  private readonly listeners = new Set<(e: AuthEvent) => void>();
  private readonly channel?: BroadcastChannel;
  /** The product session this tab signed in to (single-session products). */
  private sid?: string;
  private replaced = false;
  /** Signed out by another tab, and not signed in since: whatever storage still says. */
  private signedOut = false;
  /** The session read when this instance began. */
  private readonly started: Promise<void>;

  constructor(options: PorticoOptions) {
    this.o = { scope: DEFAULT_SCOPE, silentTimeoutMs: 10_000, popupTimeoutMs: 300_000, expiryLeewaySeconds: 30, ...options };
    this.issuer = new URL(options.issuer);
    this.client = { client_id: options.clientId, token_endpoint_auth_method: 'none' };
    const kv = options.storage ?? (typeof indexedDB !== 'undefined' ? new IndexedDbStore() : new MemoryStore());
    this.store = new Store(kv, `portico:${encodeURIComponent(options.clientId)}:`);
    if (typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(`portico:${encodeURIComponent(options.clientId)}`);
      this.channel.onmessage = (m: MessageEvent<Broadcast>) => this.heard(m.data);
    }
    this.started = this.store.session().then((s) => {
      this.sid ??= s?.sid;
      if (this.o.singleSession && this.sid) this.holdSession(this.sid, false);
    });
  }

  // ---- signing in ----------------------------------------------------------------------------

  /** Sends the browser to Portico to sign in; comes back to the redirect URI. */
  async loginWithRedirect(options: LoginOptions = {}): Promise<void> {
    const as = await this.discovery();
    const { url } = await this.begin(as, 'redirect', options);
    window.location.assign(url);
  }

  /**
   * Finishes a sign-in on the redirect URI's page: exactly one code exchange however often it is
   * called (a reload, a double mount, two instances); the URL is cleaned. Answers the `returnTo`
   * the sign-in was started with.
   */
  async handleRedirectCallback(url: string = window.location.href): Promise<{ returnTo: string }> {
    const u = new URL(url);
    const state = u.searchParams.get('state');
    if (typeof window !== 'undefined' && window.location?.href === url) {
      const clean = new URL(u);
      for (const k of ['code', 'state', 'iss', 'error', 'error_description', 'session_state']) clean.searchParams.delete(k);
      window.history.replaceState(window.history.state, '', clean.pathname + clean.search + clean.hash);
    }
    if (!state) throw new PorticoError('invalid_callback', 'the callback URL carries no state');
    const key = `${this.o.clientId}:${state}`;
    let pending = callbacksInPage.get(key);
    if (!pending) {
      pending = this.finish(u.searchParams, state);
      callbacksInPage.set(key, pending);
    }
    const result = await pending;
    if (result.popup) {
      this.broadcast({ type: 'popup_done', state });
      window.close();
    }
    return { returnTo: result.returnTo };
  }

  /**
   * Signs in in a popup. The window opens at once, inside the user's gesture (call this
   * directly from a click handler; nothing is awaited before `window.open`), at Portico with
   * `response_mode=web_message`; only a message from the issuer's origin with this sign-in's state
   * is taken. When the app's `Cross-Origin-Opener-Policy` cuts the popup off, Portico sends it back
   * to the redirect URI instead, whose page finishes the sign-in and tells this tab.
   */
  loginWithPopup(options: Omit<LoginOptions, 'prompt' | 'returnTo'> = {}): Promise<void> {
    const popup = window.open('about:blank', 'portico-login', 'popup,width=480,height=680');
    if (!popup) return Promise.reject(new PorticoError('popup_blocked', 'the browser blocked the sign-in window'));
    return this.runPopup(popup, options);
  }

  /**
   * Tries to sign in without showing anything: a hidden frame where Portico is same-site with the
   * app (third-party cookies are not needed then), else nothing (answers `false`; call
   * `loginWithRedirect({ prompt: 'none' })` for a top-level attempt).
   */
  async signInSilently(options: Omit<LoginOptions, 'prompt' | 'returnTo'> = {}): Promise<boolean> {
    if (await this.isAuthenticated()) return true;
    if (!sameSite(this.issuer, new URL(window.location.href))) return false;
    try {
      await this.silentFrame(options);
      return true;
    } catch (e) {
      if (e instanceof PorticoError && (e.reason === 'login_required' || e.reason === 'interaction_required')) return false;
      throw e;
    }
  }

  // ---- tokens --------------------------------------------------------------------------------

  /**
   * An access token: this tab's while it is good, else one a sibling tab refreshed, else a
   * refresh (one across all tabs). With `organization`, the token for that tenant (switching
   * through the refresh grant when there is none yet); without, the current tenant's — never
   * another tenant's.
   */
  async getAccessToken(options: { organization?: string } = {}): Promise<string> {
    return (await this.tokenSet(options.organization)).accessToken;
  }

  /** Makes `organization` (a handle, slug or id) the current tenant, silently. */
  async switchOrganization(organization: string): Promise<void> {
    const set = await this.tokenSet(organization);
    const session = await this.store.session();
    if (session) await this.store.putSession({ ...session, tenant: set.tenant });
    this.emit({ type: 'organization_switched', tenant: set.tenant });
    this.broadcast({ type: 'organization_switched', tenant: set.tenant });
  }

  async getUser(): Promise<User | undefined> {
    if (this.signedOut) return undefined;
    return (await this.store.session())?.claims as User | undefined;
  }

  async isAuthenticated(): Promise<boolean> {
    if (this.replaced || this.signedOut) return false;
    return (await this.store.session()) !== undefined && (await this.store.allTokens()).length > 0;
  }

  // ---- other products ------------------------------------------------------------------------

  /**
   * Opens product `slug` in a new tab, signed in: the tab opens at once (inside the gesture),
   * this product's backend (`handoffEndpoint`) asks Portico for a hand-off code, and the tab goes to
   * the target's hand-off page carrying only that code. `context` (a deep link, at most 1 KiB)
   * travels with the code, not in the URL.
   */
  openProduct(slug: string, options: { context?: string; organization?: string } = {}): Promise<void> {
    const tab = window.open('about:blank', '_blank');
    if (!tab) return Promise.reject(new PorticoError('popup_blocked', 'the browser blocked the new tab'));
    // The other product gets no handle on this one (reverse tabnabbing).
    tab.opener = null;
    return (async () => {
      try {
        if (!this.o.handoffEndpoint) throw new PorticoError('server_error', 'openProduct needs handoffEndpoint');
        const set = await this.tokenSet(options.organization);
        const resp = await fetch(this.o.handoffEndpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${set.accessToken}` },
          body: JSON.stringify({ product: slug, context: options.context, organization: set.tenant }),
        });
        const body = (await resp.json().catch(() => ({}))) as { url?: string; error?: string };
        if (!resp.ok || typeof body.url !== 'string') {
          throw new PorticoError(resp.status === 403 ? 'access_denied' : 'server_error', 'the hand-off was refused', { error: body.error });
        }
        // Only a web page: a `javascript:` URL would run in a tab of this origin.
        const target = new URL(body.url);
        if (target.protocol !== 'https:' && !(target.protocol === 'http:' && isLoopback(target))) {
          throw new PorticoError('server_error', 'the hand-off link is not an https URL');
        }
        tab.location.href = target.href;
      } catch (e) {
        tab.close();
        throw e instanceof PorticoError ? e : new PorticoError('network', 'the hand-off could not be asked for', { cause: e });
      }
    })();
  }

  // ---- signing out ---------------------------------------------------------------------------

  /**
   * Signs this app out in every tab at once (refresh tokens revoked, storage cleared). With
   * `everywhere`, also ends the Portico session — every product in this browser — through
   * RP-initiated logout (the browser goes to Portico and back to `postLogoutRedirectUri`).
   */
  async logout(options: { everywhere?: boolean } = {}): Promise<void> {
    const idToken = (await this.store.session())?.idToken;
    const sets = await this.store.allTokens();
    await this.signOutHere();
    this.signedOut = true;
    this.emit({ type: 'signed_out' });
    this.broadcast({ type: 'signed_out' });
    await Promise.all(sets.map((s) => this.revoke(s.refreshToken)));
    const as = await this.discovery().catch(() => undefined);
    if (options.everywhere && as?.end_session_endpoint) {
      const url = new URL(as.end_session_endpoint);
      url.searchParams.set('client_id', this.o.clientId);
      if (idToken) url.searchParams.set('id_token_hint', idToken);
      if (this.o.postLogoutRedirectUri) url.searchParams.set('post_logout_redirect_uri', this.o.postLogoutRedirectUri);
      window.location.assign(url.href);
    }
  }

  /** Calls `cb` on every sign-in, refresh, switch and sign-out, in this tab or another. Returns
   * the function that stops it. */
  onAuthStateChange(cb: (e: AuthEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  // ---- internals -----------------------------------------------------------------------------

  private requestOptions(): { [oauth.allowInsecureRequests]?: boolean } {
    // `portico dev` runs on http://localhost: allowed for loopback issuers only.
    return isLoopback(this.issuer) && this.issuer.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
  }

  private discovery(): Promise<oauth.AuthorizationServer> {
    if (!this.metadata) {
      this.metadata = oauth
        .discoveryRequest(this.issuer, { algorithm: 'oidc', ...this.requestOptions(), signal: this.deadline() })
        .then((r) => oauth.processDiscoveryResponse(this.issuer, r))
        .catch((e: unknown) => {
          this.metadata = undefined;
          throw new PorticoError('network', 'Portico could not be reached', { cause: e });
        });
    }
    return this.metadata;
  }

  /** Starts a sign-in: its transaction stored under its state, the authorization URL. */
  private async begin(
    as: oauth.AuthorizationServer,
    mode: LoginTransaction['mode'],
    options: LoginOptions & { responseMode?: string },
  ): Promise<{ url: string; state: string }> {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    await this.store.putTransaction(state, {
      verifier,
      nonce,
      returnTo: safeReturnTo(options.returnTo),
      organization: options.organization,
      redirectUri: this.o.redirectUri,
      mode,
      createdAt: nowSeconds(),
    });
    if (!as.authorization_endpoint) throw new PorticoError('server_error', 'Portico names no authorization endpoint');
    const url = new URL(as.authorization_endpoint);
    const q = url.searchParams;
    q.set('response_type', 'code');
    q.set('client_id', this.o.clientId);
    q.set('redirect_uri', this.o.redirectUri);
    q.set('scope', this.o.scope);
    q.set('state', state);
    q.set('nonce', nonce);
    q.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    q.set('code_challenge_method', 'S256');
    if (this.o.audience) q.set('resource', this.o.audience);
    if (options.organization) q.set('organization', options.organization);
    if (options.prompt) q.set('prompt', options.prompt);
    if (options.loginHint) q.set('login_hint', options.loginHint);
    if (options.responseMode) q.set('response_mode', options.responseMode);
    return { url: url.href, state };
  }

  /** The code exchange of one sign-in, under a lock of its state (one across tabs too); a second
   * caller finds what the first produced. */
  private finish(params: URLSearchParams, state: string): Promise<CallbackResult> {
    return withLock(this.lockName(`callback:${state}`), async () => {
      const done = await this.store.done(state);
      if (done !== undefined) return { returnTo: done, popup: false };
      const tx = await this.store.transaction(state);
      if (!tx) throw new PorticoError('invalid_callback', 'no sign-in of this browser has this state (or it expired)');
      const as = await this.discovery();
      let checked: URLSearchParams;
      try {
        checked = oauth.validateAuthResponse(as, this.client, params, state);
      } catch (e) {
        await this.store.removeTransaction(state);
        if (e instanceof oauth.AuthorizationResponseError) {
          if (tx.mode === 'popup') this.broadcast({ type: 'popup_done', state, error: e.error });
          throw new PorticoError(reasonOf(e.error), e.error_description ?? e.error, { error: e.error });
        }
        throw new PorticoError('invalid_callback', 'the authorization response is not one Portico sent', { cause: e });
      }
      let result: oauth.TokenEndpointResponse;
      try {
        const resp = await oauth.authorizationCodeGrantRequest(as, this.client, oauth.None(), checked, tx.redirectUri, tx.verifier, {
          ...this.requestOptions(),
          signal: this.deadline(),
        });
        result = await oauth.processAuthorizationCodeResponse(as, this.client, resp, { expectedNonce: tx.nonce, requireIdToken: true });
      } catch (e) {
        await this.store.removeTransaction(state);
        const err = fromTokenError(e);
        // A popup finishing on the redirect URI tells its opener, which is waiting.
        if (tx.mode === 'popup') this.broadcast({ type: 'popup_done', state, error: err.error ?? 'server_error' });
        throw err;
      }
      const claims = oauth.getValidatedIdTokenClaims(result) as unknown as User;
      const set = toTokenSet(result);
      await this.signedIn(set, claims, result.id_token, tx.organization);
      await this.store.removeTransaction(state);
      await this.store.putDone(state, tx.returnTo);
      return { returnTo: tx.returnTo, popup: tx.mode === 'popup' };
    }).then(async (r) => {
      // Told after the lock is released: no user callback runs while it is held.
      const tenant = (await this.store.session())?.tenant;
      this.emit({ type: 'signed_in', tenant });
      this.broadcast({ type: 'signed_in', tenant });
      return r;
    });
  }

  /** `organization`: how the sign-in named its tenant (a slug, say), remembered as naming it. */
  private async signedIn(set: TokenSet, claims: User, idToken?: string, organization?: string): Promise<void> {
    this.memory.clear();
    this.replaced = false;
    this.signedOut = false;
    await this.save(set);
    const aliases = organization && set.tenant ? { [organization]: set.tenant } : undefined;
    await this.store.putSession({ claims, tenant: set.tenant, sid: set.sid, idToken, aliases });
    this.sid = set.sid;
    if (this.o.singleSession && set.sid) {
      this.holdSession(set.sid, true);
      this.broadcast({ type: 'session_started', sid: set.sid });
    }
  }

  private async runPopup(popup: Window, options: Omit<LoginOptions, 'prompt' | 'returnTo'>): Promise<void> {
    let state = '';
    try {
      const as = await this.discovery();
      const begun = await this.begin(as, 'popup', { ...options, responseMode: 'web_message' });
      state = begun.state;
      popup.location.href = begun.url;
    } catch (e) {
      popup.close();
      throw e;
    }
    const params = await this.awaitPopup(popup, state);
    if (params) await this.finish(params, state);
  }

  /** The answer of the popup for `state`: its parameters from a web message, or `undefined` when
   * the popup finished the sign-in itself on the redirect URI (the COOP fallback). */
  private awaitPopup(popup: Window, state: string): Promise<URLSearchParams | undefined> {
    return new Promise((resolve, reject) => {
      const opened = Date.now();
      let severed = false;
      const cleanup = () => {
        window.removeEventListener('message', onMessage);
        this.channel?.removeEventListener('message', onBroadcast);
        clearInterval(poll);
        clearTimeout(timer);
      };
      const onMessage = (e: MessageEvent) => {
        if (e.origin !== this.issuer.origin || e.source !== popup) return;
        const data = e.data as { type?: string; response?: Record<string, string> } | null;
        if (data?.type !== 'authorization_response' || data.response?.state !== state) return;
        cleanup();
        resolve(new URLSearchParams(data.response));
      };
      const onBroadcast = (m: MessageEvent<Broadcast>) => {
        if (m.data.type !== 'popup_done' || m.data.state !== state) return;
        cleanup();
        if (m.data.error) reject(new PorticoError(reasonOf(m.data.error), m.data.error, { error: m.data.error }));
        else resolve(undefined);
      };
      const poll = setInterval(() => {
        if (!popup.closed || severed) return;
        // Closed at once after it left for Portico: the opener policy cut it off, and it goes on
        // by itself. Closed later: the user closed it.
        if (Date.now() - opened < SEVERED_WITHIN_MS) {
          severed = true;
          return;
        }
        setTimeout(() => {
          cleanup();
          reject(new PorticoError('popup_closed', 'the sign-in window was closed'));
        }, 1000);
        clearInterval(poll);
      }, 250);
      const timer = setTimeout(() => {
        cleanup();
        if (!popup.closed) popup.close();
        reject(new PorticoError('timeout', 'the sign-in window did not answer in time'));
      }, this.o.popupTimeoutMs);
      window.addEventListener('message', onMessage);
      this.channel?.addEventListener('message', onBroadcast);
    });
  }

  /** `prompt=none` in a hidden frame, answered by web message; settles within the timeout. */
  private async silentFrame(options: Omit<LoginOptions, 'prompt' | 'returnTo'>): Promise<void> {
    const as = await this.discovery();
    const { url, state } = await this.begin(as, 'frame', { ...options, prompt: 'none', responseMode: 'web_message' });
    const frame = document.createElement('iframe');
    frame.style.display = 'none';
    const params = await new Promise<URLSearchParams>((resolve, reject) => {
      const done = () => {
        window.removeEventListener('message', onMessage);
        clearTimeout(timer);
        frame.remove();
      };
      const onMessage = (e: MessageEvent) => {
        if (e.origin !== this.issuer.origin || e.source !== frame.contentWindow) return;
        const data = e.data as { type?: string; response?: Record<string, string> } | null;
        if (data?.type !== 'authorization_response' || data.response?.state !== state) return;
        done();
        resolve(new URLSearchParams(data.response));
      };
      const timer = setTimeout(() => {
        done();
        void this.store.removeTransaction(state);
        reject(new PorticoError('timeout', 'silent sign-in did not answer in time'));
      }, this.o.silentTimeoutMs);
      window.addEventListener('message', onMessage);
      frame.src = url;
      document.body.appendChild(frame);
    });
    await this.finish(params, state);
  }

  private key(tenant: string | undefined): string {
    return `${this.o.audience ?? ''}|${tenant ?? ''}`;
  }

  private lockName(what: string): string {
    return `portico:${encodeURIComponent(this.o.clientId)}:${what}`;
  }

  private fresh(set: TokenSet | undefined): boolean {
    return set !== undefined && set.expiresAt - this.o.expiryLeewaySeconds > nowSeconds();
  }

  private save(set: TokenSet): Promise<void> {
    const key = this.key(set.tenant);
    this.memory.set(key, set);
    return this.store.putTokens(key, set);
  }

  /** The tenant a reference (a handle, slug or id) names, when this browser has tokens for it. */
  private async known(reference: string): Promise<string | undefined> {
    const alias = (await this.store.session())?.aliases?.[reference];
    return (await this.store.allTokens()).find((s) => s.tenant === reference || s.tenantHandle === reference || (alias !== undefined && s.tenant === alias))?.tenant;
  }

  private async tokenSet(organization?: string): Promise<TokenSet> {
    await Promise.allSettled([...callbacksInPage.values()]);
    if (this.replaced) throw new PorticoError('session_replaced', 'a newer session of this product started in this browser');
    await this.started;
    if (this.signedOut) throw new PorticoError('login_required', 'signed out');
    const session = await this.store.session();
    if (!session) throw new PorticoError('login_required', 'not signed in');
    const tenant = organization === undefined ? session.tenant : await this.known(organization);
    if (organization !== undefined && tenant === undefined) return this.switchTo(organization, session.tenant);
    const key = this.key(tenant);
    const mine = this.memory.get(key);
    if (mine && this.fresh(mine)) return mine;
    const shared = await this.store.tokens(key);
    if (shared && this.fresh(shared)) {
      this.memory.set(key, shared);
      return shared;
    }
    if (!shared?.refreshToken) {
      if (organization !== undefined) return this.switchTo(organization, session.tenant);
      throw new PorticoError('login_required', 'no token and no refresh token for this tenant');
    }
    return this.refresh(key);
  }

  /** One refresh of `key` at a time in this tab, and across tabs under a Web Lock; after taking
   * the lock, storage is read again: a sibling's fresh token is adopted, not refreshed again. */
  private refresh(key: string): Promise<TokenSet> {
    const running = this.inflight.get(key);
    if (running) return running;
    const events: AuthEvent[] = [];
    const p = withLock(this.lockName(`refresh:${key}`), async () => {
      let set = await this.store.tokens(key);
      if (set && this.fresh(set)) return set;
      for (let attempt = 0; attempt < 2; attempt += 1) {
        if (!set?.refreshToken) throw new PorticoError('login_required', 'no refresh token');
        const used = set.refreshToken;
        try {
          const next = await this.refreshGrant(used);
          // Signed out while the request was out (here or in another tab): the new token is not
          // kept but revoked.
          if (this.signedOut || !(await this.store.session())) {
            await this.revoke(next.refreshToken);
            throw new PorticoError('login_required', 'signed out during the refresh');
          }
          await this.save(next);
          events.push({ type: 'token_refreshed', tenant: next.tenant });
          return next;
        } catch (e) {
          const err = fromTokenError(e);
          if (err.error !== 'invalid_grant') throw err;
          // Read storage again before giving up: another writer may have rotated it.
          set = await this.store.tokens(key);
          if (set?.refreshToken && set.refreshToken !== used) continue;
          await this.store.removeTokens(key);
          this.memory.delete(key);
          if (key === this.key((await this.store.session())?.tenant) || (await this.store.allTokens()).length === 0) {
            await this.signOutHere();
            events.push({ type: 'signed_out' });
          }
          throw err;
        }
      }
      throw new PorticoError('login_required', 'the refresh token was rotated twice meanwhile');
    }).finally(() => {
      this.inflight.delete(key);
      for (const e of events) {
        this.emit(e);
        this.broadcast(e);
      }
    });
    this.inflight.set(key, p);
    return p;
  }

  /** Tokens for another tenant through the refresh grant with `organization`, with the current
   * tenant's refresh token (not spent by a switch), under that token's lock. */
  private switchTo(organization: string, current: string | undefined): Promise<TokenSet> {
    const sourceKey = this.key(current);
    return withLock(this.lockName(`refresh:${sourceKey}`), async () => {
      const source = await this.store.tokens(sourceKey);
      if (!source?.refreshToken) throw new PorticoError('login_required', 'no refresh token to switch with');
      try {
        const next = await this.refreshGrant(source.refreshToken, organization, false);
        if (this.signedOut || !(await this.store.session())) {
          await this.revoke(next.refreshToken);
          throw new PorticoError('login_required', 'signed out during the switch');
        }
        await this.save(next);
        const session = await this.store.session();
        if (next.tenant && session) await this.store.putSession({ ...session, aliases: remember(session.aliases, organization, next.tenant) });
        return next;
      } catch (e) {
        const err = fromTokenError(e);
        // The switch was refused (no grant there, or a session pinned to its tenant): that is
        // not a sign-out.
        if (err.error === 'invalid_grant') throw new PorticoError('access_denied', 'that organization is not available to this session', { error: err.error });
        throw err;
      }
    });
  }

  /** The refresh grant. `keep`: without a new refresh token in the answer, the presented one
   * stays (a rotation always answers one); never for a switch, whose answer is another family's. */
  private async refreshGrant(refreshToken: string, organization?: string, keep = true): Promise<TokenSet> {
    const as = await this.discovery();
    const extra: Record<string, string> = {};
    if (organization) extra.organization = organization;
    const resp = await oauth.refreshTokenGrantRequest(as, this.client, oauth.None(), refreshToken, {
      ...this.requestOptions(),
      additionalParameters: extra,
      signal: this.deadline(),
    });
    const result = await oauth.processRefreshTokenResponse(as, this.client, resp);
    return toTokenSet(result, keep ? refreshToken : undefined);
  }

  /** Revokes a refresh token, best effort (signing out goes on regardless). */
  private async revoke(token: string | undefined): Promise<void> {
    if (!token) return;
    try {
      const as = await this.discovery();
      const resp = await oauth.revocationRequest(as, this.client, oauth.None(), token, { ...this.requestOptions(), signal: this.deadline() });
      await oauth.processRevocationResponse(resp);
    } catch {
      // Portico's copy ends with its session.
    }
  }

  /** Every request to Portico settles within the silent timeout: none holds a lock for ever. */
  private deadline(): AbortSignal {
    return AbortSignal.timeout(this.o.silentTimeoutMs);
  }

  private async signOutHere(): Promise<void> {
    this.memory.clear();
    this.sid = undefined;
    await this.store.clear();
  }

  private emit(e: AuthEvent): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(e);
      } catch (err) {
        console.error('portico: an onAuthStateChange callback threw', err);
      }
    }
  }

  private broadcast(m: Broadcast): void {
    this.channel?.postMessage(m);
  }

  /** What another tab of this app said. A replaced tab hears nothing more but a sign-out: its
   * session is over, whatever the newer one does. */
  private heard(m: Broadcast): void {
    if (this.replaced && m.type !== 'signed_out') return;
    switch (m.type) {
      case 'signed_out':
        this.memory.clear();
        this.sid = undefined;
        this.signedOut = true;
        this.emit({ type: 'signed_out' });
        break;
      case 'signed_in':
        this.memory.clear();
        this.signedOut = false;
        void this.store.session().then((s) => {
          if (!this.o.singleSession) this.sid = s?.sid;
          this.emit(m);
        });
        break;
      case 'token_refreshed':
      case 'organization_switched':
        this.emit(m);
        break;
      case 'session_started':
        if (this.o.singleSession && this.sid && this.sid !== m.sid) this.replace();
        break;
      default:
        break;
    }
  }

  /** A newer session of this single-session product began in another tab: this one is over. */
  private replace(): void {
    if (this.replaced) return;
    this.replaced = true;
    this.memory.clear();
    this.emit({ type: 'session_replaced' });
  }

  /** The tab of the newest session holds a lock; a newer one takes it (`steal`), which tells
   * this one it was replaced even if it missed the broadcast. */
  private holdSession(sid: string, steal: boolean): void {
    if (typeof navigator === 'undefined' || !navigator.locks) return;
    const name = this.lockName('session');
    navigator.locks
      .request(name, steal ? { steal: true } : { ifAvailable: true }, (lock) => (lock ? new Promise<void>(() => undefined) : undefined))
      .catch(() => {
        if (this.sid === sid) this.replace();
      });
  }
}

/** Tenant references (a slug, an id, a handle — handles change with time) kept per session. */
const MAX_ALIASES = 32;

/** `aliases` with `reference` → `tenant` added last, the oldest dropped past [`MAX_ALIASES`]. */
function remember(aliases: Record<string, string> | undefined, reference: string, tenant: string): Record<string, string> {
  const entries = Object.entries(aliases ?? {}).filter(([k]) => k !== reference);
  entries.push([reference, tenant]);
  return Object.fromEntries(entries.slice(-MAX_ALIASES));
}

function toTokenSet(r: oauth.TokenEndpointResponse, previousRefresh?: string): TokenSet {
  const claims = readJwtPayload(r.access_token);
  return {
    accessToken: r.access_token,
    expiresAt: nowSeconds() + (r.expires_in ?? 60),
    refreshToken: r.refresh_token ?? previousRefresh,
    scope: r.scope,
    tenant: typeof r.org_id === 'string' ? r.org_id : undefined,
    tenantHandle: typeof r.org_handle === 'string' ? r.org_handle : undefined,
    sid: typeof claims?.sid === 'string' ? claims.sid : undefined,
  };
}

/** The claims of a JWT, read without verifying (Portico's own answer over TLS, for its `sid`). */
function readJwtPayload(jwt: string): Record<string, unknown> | undefined {
  try {
    const part = jwt.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function fromTokenError(e: unknown): PorticoError {
  if (e instanceof PorticoError) return e;
  if (e instanceof oauth.ResponseBodyError) return new PorticoError(reasonOf(e.error), e.error_description ?? e.error, { error: e.error, cause: e });
  return new PorticoError('network', 'the token request failed', { cause: e });
}

/** Runs `fn` under the Web Lock `name` (one holder across this origin's tabs). */
function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (typeof navigator !== 'undefined' && navigator.locks) return navigator.locks.request(name, fn) as Promise<T>;
  return fn();
}

function isLoopback(u: URL): boolean {
  return ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
}

/** Whether two URLs are same-site (same scheme, same last two host labels: an approximation of
 * the registrable domain that holds for the names this is used with). */
export function sameSite(a: URL, b: URL): boolean {
  const site = (u: URL) => u.hostname.split('.').slice(-2).join('.');
  return a.protocol === b.protocol && site(a) === site(b);
}
