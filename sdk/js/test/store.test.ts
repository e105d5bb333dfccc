import { afterEach, describe, expect, it, vi } from 'vitest';
import { PorticoError, reasonOf } from '../src/errors.js';
import { sameSite } from '../src/index.js';
import { type LoginTransaction, MemoryStore as MemoryStorage, Store, TRANSACTION_TTL_SECONDS, safeReturnTo } from '../src/store.js';

const tx = (returnTo: string, createdAt = Math.floor(Date.now() / 1000)): LoginTransaction => ({
  verifier: `v-${returnTo}`,
  nonce: `n-${returnTo}`,
  returnTo,
  redirectUri: 'https://app.example.test/callback',
  mode: 'redirect',
  createdAt,
});

afterEach(() => vi.useRealTimers());

describe('login transactions', () => {
  it('are keyed by state, so two logins finish in either order', async () => {
    const store = new Store(new MemoryStorage(), 'portico:crm-spa:');
    await store.putTransaction('state-a', tx('/a'));
    await store.putTransaction('state-b', tx('/b'));
    expect((await store.transaction('state-b'))?.returnTo).toBe('/b');
    await store.removeTransaction('state-b');
    expect((await store.transaction('state-a'))?.verifier).toBe('v-/a');
    expect(await store.transaction('state-b')).toBeUndefined();
  });

  it('expire after ten minutes, and a new login sweeps the stale ones', async () => {
    const kv = new MemoryStorage();
    const store = new Store(kv, 'portico:crm-spa:');
    const old = Math.floor(Date.now() / 1000) - TRANSACTION_TTL_SECONDS - 1;
    await store.putTransaction('old', tx('/old', old));
    expect(await store.transaction('old')).toBeUndefined();
    await store.putTransaction('old2', tx('/old', old));
    await store.putTransaction('new', tx('/new'));
    expect(await kv.get('portico:crm-spa:tx:old2')).toBeUndefined();
    expect((await store.transaction('new'))?.returnTo).toBe('/new');
  });

  it('belong to one client: another prefix sees nothing and clear() leaves it alone', async () => {
    const kv = new MemoryStorage();
    const a = new Store(kv, 'portico:a:');
    const b = new Store(kv, 'portico:b:');
    await a.putTransaction('s', tx('/a'));
    await b.putTokens('k', { accessToken: 'at', expiresAt: 1 });
    expect(await b.transaction('s')).toBeUndefined();
    await a.clear();
    expect(await b.allTokens()).toHaveLength(1);
  });

  it('drops a record it cannot read instead of failing', async () => {
    const kv = new MemoryStorage();
    await kv.set('portico:c:session', '{not json');
    const store = new Store(kv, 'portico:c:');
    expect(await store.session()).toBeUndefined();
    expect(await kv.get('portico:c:session')).toBeUndefined();
  });
});

describe('returnTo', () => {
  it('keeps a same-origin path', () => {
    for (const ok of ['/', '/reports/42', '/a?b=c#d', '/%2F%2Fnot-a-host']) expect(safeReturnTo(ok)).toBe(ok);
  });
  it('turns anything that could leave the origin into /', () => {
    for (const bad of [
      undefined,
      '',
      'https://evil.test/',
      '//evil.test/x',
      '/\\evil.test',
      '\\\\evil.test',
      'javascript:alert(1)',
      'reports',
      '/\tevil',
      '/\n//evil.test',
      '/\u0000x',
      '/\u007f',
      '/\u0085x',
    ]) {
      expect(safeReturnTo(bad), JSON.stringify(bad)).toBe('/');
    }
  });
});

describe('errors', () => {
  it('map OAuth codes to typed reasons', () => {
    expect(reasonOf('login_required')).toBe('login_required');
    expect(reasonOf('consent_required')).toBe('interaction_required');
    expect(reasonOf('access_denied')).toBe('access_denied');
    expect(reasonOf('temporarily_unavailable')).toBe('server_error');
    const e = new PorticoError('timeout', 'slow');
    expect(e).toBeInstanceOf(Error);
    expect([e.reason, e.name]).toEqual(['timeout', 'PorticoError']);
  });
});

describe('sameSite', () => {
  it('compares scheme and the last two labels', () => {
    expect(sameSite(new URL('https://id.example.test'), new URL('https://crm.example.test:8443/x'))).toBe(true);
    expect(sameSite(new URL('https://id.example.test'), new URL('https://crm.acme.test'))).toBe(false);
    expect(sameSite(new URL('https://id.example.test'), new URL('http://crm.example.test'))).toBe(false);
  });
});
