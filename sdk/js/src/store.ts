// What the SDK keeps in the browser: one store for every tab of the app (IndexedDB by default;
// never sessionStorage, which `window.open` copies into the new tab and so forks a rotation).

/**
 * Where the SDK keeps its records: asynchronous, and consistent across tabs (a write committed in
 * one tab is what the next reader in any tab sees). IndexedDB by default. localStorage is not
 * enough: Chromium's tabs in different processes may read its values late, so a tab that takes
 * the refresh lock after a sibling could still read the spent refresh token.
 */
export interface KeyValueStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  keys(prefix: string): Promise<string[]>;
}

/** The default store: one IndexedDB object store for the origin. */
export class IndexedDbStore implements KeyValueStore {
  private db?: Promise<IDBDatabase>;

  constructor(private readonly name = 'portico') {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('kv');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }

  private async run<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const t = db.transaction('kv', mode);
      const req = op(t.objectStore('kv'));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }

  async get(key: string): Promise<string | undefined> {
    const v = await this.run('readonly', (s) => s.get(key) as IDBRequest<string | undefined>);
    return typeof v === 'string' ? v : undefined;
  }

  async set(key: string, value: string): Promise<void> {
    await this.run('readwrite', (s) => s.put(value, key));
  }

  async delete(key: string): Promise<void> {
    await this.run('readwrite', (s) => s.delete(key));
  }

  async keys(prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const keys = await this.run('readonly', (s) => s.getAllKeys(range));
    return keys.filter((k): k is string => typeof k === 'string');
  }
}

/** A store in this page's memory only (tests, or a browser without IndexedDB: one tab). */
export class MemoryStore implements KeyValueStore {
  private readonly m = new Map<string, string>();
  async get(key: string) {
    return this.m.get(key);
  }
  async set(key: string, value: string) {
    this.m.set(key, value);
  }
  async delete(key: string) {
    this.m.delete(key);
  }
  async keys(prefix: string) {
    return [...this.m.keys()].filter((k) => k.startsWith(prefix));
  }
}

/** A sign-in in flight, stored under its `state` until its callback, for at most ten minutes. */
export interface LoginTransaction {
  verifier: string;
  nonce: string;
  returnTo: string;
  organization?: string;
  redirectUri: string;
  /** `popup`: its callback page finishes it and closes itself; `frame`: a hidden frame's. */
  mode: 'redirect' | 'popup' | 'frame';
  createdAt: number;
}

/** The tokens for one (audience, tenant): the refresh token and the latest access token. */
export interface TokenSet {
  accessToken: string;
  /** Seconds since the epoch. */
  expiresAt: number;
  refreshToken?: string;
  scope?: string;
  /** The tenant the tokens are for (`org_id`), when the product has tenants. */
  tenant?: string;
  /** The tenant's current handle (`org_handle`), to name it to Portico. */
  tenantHandle?: string;
  /** The product session (`sid`) the tokens belong to. */
  sid?: string;
}

/** The signed-in user of this app in this browser. */
export interface SessionRecord {
  /** The validated ID token's claims. */
  claims: Record<string, unknown>;
  /** The ID token, as the hint of an RP-initiated logout. */
  idToken?: string;
  /** The current tenant (`org_id`). */
  tenant?: string;
  /** The product session. */
  sid?: string;
  /** The references (slug, handle) a tenant was asked by, and the tenant each named. */
  aliases?: Record<string, string>;
}

export const TRANSACTION_TTL_SECONDS = 600;

const now = () => Math.floor(Date.now() / 1000);

/** The SDK's records for one client, all under one prefix. */
export class Store {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly prefix: string,
  ) {}

  private async read<T>(key: string): Promise<T | undefined> {
    const raw = await this.kv.get(this.prefix + key);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      await this.kv.delete(this.prefix + key);
      return undefined;
    }
  }

  private write(key: string, value: unknown): Promise<void> {
    return this.kv.set(this.prefix + key, JSON.stringify(value));
  }

  private async keys(sub: string): Promise<string[]> {
    return (await this.kv.keys(this.prefix + sub)).map((k) => k.slice(this.prefix.length));
  }

  /** Stores a transaction under its state, after dropping every expired one. */
  async putTransaction(state: string, tx: LoginTransaction): Promise<void> {
    await this.dropStale('tx:');
    await this.write(`tx:${state}`, tx);
  }

  /** The transaction for `state` when it has not expired. */
  async transaction(state: string): Promise<LoginTransaction | undefined> {
    const tx = await this.read<LoginTransaction>(`tx:${state}`);
    if (tx && now() - tx.createdAt > TRANSACTION_TTL_SECONDS) {
      await this.kv.delete(`${this.prefix}tx:${state}`);
      return undefined;
    }
    return tx;
  }

  removeTransaction(state: string): Promise<void> {
    return this.kv.delete(`${this.prefix}tx:${state}`);
  }

  /** Drops every record under `sub` older than a transaction may be. */
  private async dropStale(sub: string): Promise<void> {
    for (const k of await this.keys(sub)) {
      const r = await this.read<{ createdAt?: number }>(k);
      if (!r || now() - (r.createdAt ?? 0) > TRANSACTION_TTL_SECONDS) await this.kv.delete(this.prefix + k);
    }
  }

  /** What a finished callback for `state` produced (its returnTo), for a second reader. */
  async putDone(state: string, returnTo: string): Promise<void> {
    await this.dropStale('done:');
    await this.write(`done:${state}`, { returnTo, createdAt: now() });
  }

  async done(state: string): Promise<string | undefined> {
    return (await this.read<{ returnTo: string }>(`done:${state}`))?.returnTo;
  }

  tokens(key: string): Promise<TokenSet | undefined> {
    return this.read<TokenSet>(`tokens:${key}`);
  }

  putTokens(key: string, set: TokenSet): Promise<void> {
    return this.write(`tokens:${key}`, set);
  }

  removeTokens(key: string): Promise<void> {
    return this.kv.delete(`${this.prefix}tokens:${key}`);
  }

  async allTokens(): Promise<TokenSet[]> {
    const sets = await Promise.all((await this.keys('tokens:')).map((k) => this.read<TokenSet>(k)));
    return sets.filter((t): t is TokenSet => t !== undefined);
  }

  /** The signed-in user, and the tenant last signed in to or switched to. */
  session(): Promise<SessionRecord | undefined> {
    return this.read('session');
  }

  putSession(s: SessionRecord): Promise<void> {
    return this.write('session', s);
  }

  /** Forgets everything of this client: tokens, session, transactions. */
  async clear(): Promise<void> {
    for (const k of await this.keys('')) await this.kv.delete(this.prefix + k);
  }
}

/**
 * A `returnTo` the app may be sent back to: a same-origin path. Anything else — a scheme, `//`
 * (another host), a backslash (which browsers read as `/`), a control character — becomes `/`.
 */
export function safeReturnTo(value: string | undefined): string {
  if (!value) return '/';
  if (!value.startsWith('/') || value.startsWith('//')) return '/';
  if (value.includes('\\')) return '/';
  // C0 controls, DEL and the C1 range: browsers strip some of them from URLs, which can turn a
  // path into a scheme-relative one.
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return '/';
  }
  return value;
}
