//! Verifying Portico's own access tokens (for introspection, userinfo, revocation, the admin API's
//! bearer check, hand-off and token exchange): signature by a published key with the algorithm
//! that key is for (so `alg: none` and algorithm swaps fail), `typ: at+jwt` (RFC 9068 §4), issuer
//! and expiry, then liveness at the source.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::token::issue::family_of_jti;
use jsonwebtoken::{Algorithm, Validation};
use portico_model::{AccessClaims, Grantee, Product, Subject, TenantId, UserId};
use portico_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

fn algorithm(alg: portico_model::SigningAlg) -> Algorithm {
    match alg {
        portico_model::SigningAlg::EdDSA => Algorithm::EdDSA,
        portico_model::SigningAlg::ES256 => Algorithm::ES256,
        portico_model::SigningAlg::RS256 => Algorithm::RS256,
    }
}

/// The claims of a JWS Portico signed: a published key, the algorithm that key is for, the
/// expected `typ`, Portico as issuer, and the `required` claims present. Expiry is the caller's.
/// Answers the claims with the `kid` of the key that verified them.
fn decode_own<T: serde::de::DeserializeOwned>(p: &Provider, token: &str, typ: &str, required: &[&str], now: i64) -> Option<(T, String)> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some(typ) {
        return None;
    }
    let kid = header.kid?;
    let keys = p.keys();
    let (alg, key) = keys.verifier(&kid, now, p.key_retention())?;
    if header.alg != algorithm(alg) {
        return None;
    }
    let mut v = Validation::new(algorithm(alg));
    v.set_issuer(&[&p.issuer]);
    v.validate_aud = false;
    v.validate_exp = false;
    v.leeway = 0;
    v.set_required_spec_claims(required);
    let claims = jsonwebtoken::decode::<T>(token, key, &v).ok()?.claims;
    Some((claims, kid))
}

/// The claims of a well-formed, correctly signed, unexpired Portico access token.
///
/// A resource server introspects the same token on every call it receives, so a token whose
/// signature checked out is remembered (by the SHA-256 of its exact text) while it is in use: the
/// next presentation skips the signature, never the rest. Its key must still be one that verifies
/// (a key retired since is refused at once), expiry is checked every time, and liveness at the
/// source is the caller's, every time.
pub fn decode_access_token(p: &Provider, token: &str, now: i64) -> Option<AccessClaims> {
    let digest = crate::random::sha256(token);
    if let Some(entry) = p.verified.get(&digest) {
        let (kid, claims) = &*entry;
        if claims.exp > now && p.keys().verifier(kid, now, p.key_retention()).is_some() {
            return Some(claims.clone());
        }
        p.verified.forget(&digest);
        return None;
    }
    let (claims, kid): (AccessClaims, _) = decode_own(p, token, portico_claims::ACCESS_TOKEN_TYP, &["exp", "iss", "sub", "aud"], now)?;
    if claims.exp <= now {
        return None;
    }
    p.verified.put(digest, Arc::new((kid, claims.clone())));
    Some(claims)
}

/// How many verified access tokens one generation of [`Verified`] holds: the tokens in use right
/// now by the resource servers that introspect (a few hundred bytes each; two generations).
const VERIFIED_GENERATION: usize = 2048;

/// Access tokens whose signature Portico has checked, by the SHA-256 of their text, with the kid
/// of the key that signed them and their claims. Two generations: new entries go into the current
/// one, and when it is full it becomes the previous one (the one before is forgotten); a hit in the
/// previous generation moves the entry back into the current one. So the tokens in use stay, at
/// most twice [`VERIFIED_GENERATION`] are held, a token unused for two generations is forgotten,
/// and no request ever sweeps the whole map. An expired entry goes when it is next presented.
#[derive(Default)]
pub struct Verified {
    generations: std::sync::Mutex<Generations>,
}

type Entry = Arc<(String, AccessClaims)>;

#[derive(Default)]
struct Generations {
    current: HashMap<[u8; 32], Entry>,
    previous: HashMap<[u8; 32], Entry>,
}

impl Generations {
    /// Inserts `entry`; answers the generation it pushed out, for the caller to drop after
    /// unlocking (up to a generation of claims freed outside the lock).
    #[must_use]
    fn insert(&mut self, digest: [u8; 32], entry: Entry) -> Option<HashMap<[u8; 32], Entry>> {
        let retired = (self.current.len() >= VERIFIED_GENERATION).then(|| std::mem::replace(&mut self.previous, std::mem::take(&mut self.current)));
        self.current.insert(digest, entry);
        retired
    }
}

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Entry> {
        let mut g = self.lock();
        if let Some(entry) = g.current.get(digest) {
            return Some(entry.clone());
        }
        let entry = g.previous.remove(digest)?;
        let retired = g.insert(*digest, entry.clone());
        drop(g);
        drop(retired);
        Some(entry)
    }

    fn put(&self, digest: [u8; 32], entry: Entry) {
        let retired = self.lock().insert(digest, entry);
        drop(retired);
    }

    fn forget(&self, digest: &[u8; 32]) {
        let mut g = self.lock();
        g.current.remove(digest);
        g.previous.remove(digest);
    }

    /// How many tokens are remembered (for tests).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The claims of an ID token Portico issued, expired or not (RP-Initiated Logout 1.0 §2: an
/// `id_token_hint` is accepted after its `exp`), as long as its signing key is still published.
pub fn decode_id_token_hint(p: &Provider, token: &str, now: i64) -> Option<crate::token::issue::IdClaims> {
    decode_own(p, token, "JWT", &["iss", "sub", "aud", "iat"], now).map(|(claims, _)| claims)
}

/// What a live token may do now: the roles and permissions it carries that the live grant still
/// gives (invariant 4: a role taken away ends the tokens that carry it at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

/// Whether a decoded access token is still good at the source (invariant 4): not revoked, and
/// for a user its family not revoked, the user active and still holding the grant; for a client,
/// the client still registered for the product and the client's
/// grant still active. A token whose roles are not all still granted is not live. A client's token
/// is checked in one read: introspection's hot path.
pub async fn live(p: &Provider, c: &AccessClaims, now: i64) -> Result<Option<Live>, portico_store::StoreError> {
    let config = p.config();
    let Some(product) = config.product_by_audience(&c.aud) else {
        return Ok(None);
    };
    let held = |granted: &[String]| {
        // Every role the token names must still be granted and defined; its permissions shrink
        // to those the product gives those roles today.
        if !c.roles.iter().all(|r| granted.contains(r) && product.roles.contains_key(r)) {
            return None;
        }
        let now_given: std::collections::BTreeSet<&str> = c.roles.iter().flat_map(|r| &product.roles[r]).map(String::as_str).collect();
        Some(Live {
            roles: c.roles.clone(),
            permissions: c.permissions.iter().filter(|x| now_given.contains(x.as_str())).cloned().collect(),
        })
    };
    let client = match Subject::of_claim(&c.sub) {
        Subject::User(user) => return Ok(user_live(&p.store, c, product, &user, now).await?.and_then(|roles| held(&roles))),
        Subject::Client(client) => client,
    };
    let registered = config
        .client(client.as_str())
        .is_some_and(|e| e.client.product == product.slug || e.client.resources.contains(&product.slug));
    // A token names a tenant exactly when its product has tenants (as `require_active_grant`
    // decides for users): a product switched to or from tenants ends the other kind at once.
    if !registered || product.tenant_aware != c.org_id.is_some() {
        return Ok(None);
    }
    // A client's token came from a grant to the client: revoking, expiring or narrowing it ends
    // the token at once.
    let tenant = c.org_id.as_deref().map(TenantId::new);
    let granted = p
        .store
        .client_token_grant(&c.jti, &Grantee::Client(client), &product.slug, tenant.as_ref(), now)
        .await?;
    Ok(granted.and_then(|roles| held(&roles)))
}

/// The roles a user's token still holds at the source: its `jti` and family live, the user
/// active, an active grant for the token's product and tenant.
async fn user_live(store: &Store, c: &AccessClaims, product: &Product, user: &UserId, now: i64) -> Result<Option<Vec<String>>, portico_store::StoreError> {
    if !store.access_token_live(&c.jti, family_of_jti(&c.jti)).await? {
        return Ok(None);
    }
    let Some(user) = store.user_by_id(user).await? else {
        return Ok(None);
    };
    if !user.is_active() {
        return Ok(None);
    }
    let grants = store.grants_for(&Grantee::User(user.id), &product.slug).await?;
    let tenant = c.org_id.as_deref().map(TenantId::new);
    Ok(portico_model::require_active_grant(&grants, product, tenant.as_ref(), now)
        .ok()
        .map(|g| g.roles.clone()))
}

/// Whether a decoded access token is still good at the source: [`live`] without the detail.
pub async fn is_live(p: &Provider, c: &AccessClaims, now: i64) -> Result<bool, portico_store::StoreError> {
    Ok(live(p, c, now).await?.is_some())
}

/// The subject a product's backend presents for its own user (hand-off, token exchange): a live
/// access token for `product` whose subject is a user. Anything else is `invalid_request`
/// (RFC 8693 §2.2.2: a subject_token "invalid for any reason").
///
/// A DPoP-bound token (RFC 9449) is accepted only from a request that proves its key
/// (`proven_key`, the thumbprint of a proof verified with this request): otherwise whoever stole
/// it could trade it here for tokens no key binds.
pub async fn own_user_token(p: &Provider, token: Option<&str>, product: &Product, proven_key: Option<&str>, now: i64) -> Result<AccessClaims, OAuthError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth!(InvalidRequest, "subject_token is required"))?;
    let bad = || oauth!(InvalidRequest, "the subject_token is invalid, expired or not for this client's product");
    let claims = decode_access_token(p, token, now).ok_or_else(bad)?;
    if claims.aud != product.audience.as_str() || Subject::of_claim(&claims.sub).user().is_none() || !is_live(p, &claims, now).await? {
        return Err(bad());
    }
    if claims.cnf.as_ref().is_some_and(|cnf| proven_key != Some(cnf.jkt.as_str())) {
        return Err(oauth!(
            InvalidRequest,
            "the subject_token is DPoP-bound: send a DPoP proof of its key with this request"
        ));
    }
    Ok(claims)
}
