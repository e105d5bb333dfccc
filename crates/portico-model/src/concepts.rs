//! The suite's concepts as stored and cached: products, clients, tenants, users, grants.

use crate::ids::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a product demands a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    #[default]
    Optional,
    Required,
}

/// How the first second factor of an account that has none may be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MfaEnrolment {
    /// By any signed-in session of the user (trust on first use).
    #[default]
    FirstUse,
    /// Only by a session that opened a link mailed to the account's address.
    EmailLink,
}

/// A resource server of the suite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub slug: ProductSlug,
    pub name: String,
    pub audience: Audience,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: i64,
    pub mfa: MfaPolicy,
    /// Whether its users' first factor may be set up by any of their sessions. Users who hold a
    /// grant of a product with [`MfaEnrolment::EmailLink`] need the mailed link, everywhere.
    #[serde(default)]
    pub mfa_enrolment: MfaEnrolment,
    pub single_session: bool,
    pub tenant_aware: bool,
    pub signup: bool,
    pub handoff_to: Vec<ProductSlug>,
    /// Products this one's backends may call on a user's behalf with token exchange (RFC 8693).
    #[serde(default)]
    pub exchange_to: Vec<ProductSlug>,
    /// role → permissions
    pub roles: BTreeMap<String, Vec<String>>,
    /// Seconds a session of this product may go unused (its refresh token expires after that
    /// long without a refresh), when tighter than the deployment's.
    #[serde(default)]
    pub session_idle: Option<i64>,
    /// Seconds after sign-in that this product wants a fresh sign-in: authorization asks for one
    /// (as `max_age` would) and refresh stops.
    #[serde(default)]
    pub session_absolute: Option<i64>,
    /// Seconds after a refresh token's rotation during which presenting it again answers with its
    /// successor instead of revoking the family (0: never, the default). For clients that cannot
    /// serialize their refreshes; see `Product::REFRESH_REUSE_GRACE_MAX`.
    #[serde(default)]
    pub refresh_reuse_grace: i64,
}

impl Product {
    /// The longest reuse grace a product may set: long enough for tabs that refresh together,
    /// short enough that a stolen token is of little use.
    pub const REFRESH_REUSE_GRACE_MAX: i64 = 60;

    /// When a refresh token issued or rotated at `now` expires: the deployment's refresh
    /// lifetime, tightened by this product's idle and absolute session limits.
    pub fn refresh_expiry(&self, refresh_ttl: i64, auth_time: i64, now: i64) -> i64 {
        let idle = now + self.session_idle.map_or(refresh_ttl, |i| i.min(refresh_ttl));
        self.session_absolute.map_or(idle, |a| idle.min(auth_time + a))
    }

    /// Whether a sign-in at `auth_time` is too old for this product at `now`.
    pub fn needs_fresh_login(&self, auth_time: i64, now: i64) -> bool {
        self.session_absolute.is_some_and(|a| now - auth_time >= a)
    }

    /// Every permission any role of this product carries.
    pub fn all_permissions(&self) -> impl Iterator<Item = &str> {
        self.roles.values().flatten().map(String::as_str)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Confidential,
    Public,
}

/// What kind of application a client is (OpenID Connect Dynamic Client Registration §2,
/// `application_type`): a web application, or a native app on a device (RFC 8252), whose
/// redirects come back through the loopback interface, a private-use URI scheme or a claimed
/// `https` URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    #[default]
    Web,
    Native,
}

/// RFC 6749 grant types a client may be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    /// RFC 8628: a device without a browser polls while its user approves elsewhere.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::TokenExchange,
        GrantType::DeviceCode,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
    /// Short label for metrics and audit.
    pub fn label(self) -> &'static str {
        match self {
            GrantType::TokenExchange => "token_exchange",
            GrantType::DeviceCode => "device_code",
            other => other.as_str(),
        }
    }
}

/// JWS algorithms Portico signs with. EdDSA (Ed25519) is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    #[default]
    EdDSA,
    ES256,
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256];
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// How a client authenticates at the token, introspection and revocation endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with one of the client's own keys (RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

/// Where a `private_key_jwt` client's public keys are: registered with it, or published at a URL
/// it controls (fetched with a timeout and a size limit, and cached).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeys {
    /// A JWK Set (`{"keys": […]}`), as registered.
    Jwks(serde_json::Value),
    JwksUri(String),
}

/// An OAuth client of one product. Its secret is kept only as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: ClientId,
    pub product: ProductSlug,
    pub kind: ClientKind,
    pub name: String,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub web_origins: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// Other products (by slug) this client may ask tokens for with `resource`.
    pub resources: Vec<ProductSlug>,
    pub backchannel_logout_uri: Option<String>,
    pub first_party: bool,
    pub signing_alg: SigningAlg,
    #[serde(default)]
    pub application_type: ApplicationType,
    /// RFC 9126 §6: its authorization requests must be pushed (`/oauth2/par`) first.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// For `private_key_jwt`: the keys its assertions are signed with.
    #[serde(default)]
    pub keys: Option<ClientKeys>,
    /// RFC 9449 §5.2: its access tokens are always DPoP-bound; a token request without a proof is
    /// refused.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The page of this product's front end that receives a hand-off code (`?handoff_code=…`)
    /// and has its backend redeem it: where another product sends a user it hands over. At most
    /// one client of a product registers one; it redeems, so it is confidential.
    #[serde(default)]
    pub handoff_uri: Option<String>,
    /// Redirect URIs, post-logout redirect URIs and web origins that follow its tenants' own
    /// domains (`https://{tenant_domain}/callback`); a URI matched through one names that tenant.
    #[serde(default, skip_serializing_if = "crate::domains::DomainTemplates::is_empty")]
    pub domain_templates: crate::domains::DomainTemplates,
    /// OIDC Core §4: the page of this product that starts a sign-in when another party (the
    /// account page's launcher) sends the user there with `iss`; may follow the tenants' domains
    /// (`https://crm.{tenant_domain}/login`). At most one client of a product registers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
}

impl Client {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    pub fn is_public(&self) -> bool {
        self.kind == ClientKind::Public
    }
    /// Whether a response sent to `redirect` reaches this client and no other (RFC 8252 §8.6).
    /// A web application's redirect is its own. A native app's loopback port or private-use
    /// scheme can be taken by any app on the device; only a claimed `https` URL is verified by the
    /// operating system. Where it does not, "the request SHOULD be processed as if no previous
    /// request had been approved": the user is asked every time.
    pub fn redirect_proves_identity(&self, redirect: &str) -> bool {
        self.application_type == ApplicationType::Web || redirect.starts_with("https://")
    }

    /// The registered post-logout redirect URI `presented` names, by the rule of
    /// [`Client::registered_redirect`].
    pub fn registered_post_logout_redirect(&self, presented: &str) -> Option<&RedirectUri> {
        let native = self.application_type == ApplicationType::Native;
        self.post_logout_redirect_uris
            .iter()
            .find(|r| r.is_exactly(presented) || (native && r.matches_loopback_any_port(presented)))
    }

    /// The registered redirect URI `presented` names, if any: exactly equal, character for
    /// character — except that a native app's loopback IP redirect takes any port (RFC 8252 §7.3;
    /// RFC 9700 §4.1.3 makes it the one exception to exact matching).
    pub fn registered_redirect(&self, presented: &str) -> Option<&RedirectUri> {
        let native = self.application_type == ApplicationType::Native;
        self.redirect_uris
            .iter()
            .find(|r| r.is_exactly(presented) || (native && r.matches_loopback_any_port(presented)))
    }
}

/// A customer organisation. Named outside Portico only by its opaque `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub domains: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
    pub fn parse(value: &str) -> Self {
        if value == "active" { UserStatus::Active } else { UserStatus::Disabled }
    }
}

/// The one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub status: UserStatus,
    pub created_at: i64,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// Who holds a grant: a person, or an automation client (for `client_credentials`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    User(UserId),
    Client(ClientId),
}

impl Grantee {
    /// The stored form: `usr_…` ids as they are, clients as `client:<id>`.
    pub fn key(&self) -> String {
        match self {
            Grantee::User(u) => u.as_str().to_owned(),
            Grantee::Client(c) => format!("client:{c}"),
        }
    }
    pub fn from_key(key: &str) -> Self {
        match key.strip_prefix("client:") {
            Some(c) => Grantee::Client(ClientId::new(c)),
            None => Grantee::User(UserId::new(key)),
        }
    }
}

/// Whom a token is about: a person, or an automation client acting as itself
/// (`client_credentials`, whose `sub` is the client's id, RFC 9068 §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    User(UserId),
    Client(ClientId),
}

impl Subject {
    /// The subject a `sub` claim names. User ids carry [`USER_ID_PREFIX`], which no client id may
    /// (the suite file refuses it, [`crate::spec::RESERVED_ID_PREFIXES`]): this is the one place
    /// that tells the two apart.
    pub fn of_claim(sub: &str) -> Self {
        if sub.starts_with(USER_ID_PREFIX) {
            Subject::User(UserId::new(sub))
        } else {
            Subject::Client(ClientId::new(sub))
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        match self {
            Subject::User(u) => Some(u),
            Subject::Client(_) => None,
        }
    }

    /// Who would hold the grant behind a token about this subject.
    pub fn grantee(&self) -> Grantee {
        match self {
            Subject::User(u) => Grantee::User(u.clone()),
            Subject::Client(c) => Grantee::Client(c.clone()),
        }
    }

    /// How the audit log names it as an actor: a user by id, a client as `client:<id>`.
    pub fn actor(&self) -> String {
        self.grantee().key()
    }
}

/// Which tenants a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantScope {
    /// A product without tenants.
    NoTenant,
    One(TenantId),
    /// Every tenant of the product (operators); tokens still name one tenant.
    AllTenants,
}

impl GrantScope {
    pub fn key(&self) -> &str {
        match self {
            GrantScope::NoTenant => "",
            GrantScope::One(t) => t.as_str(),
            GrantScope::AllTenants => "*",
        }
    }
    pub fn from_key(key: &str) -> Self {
        match key {
            "" => GrantScope::NoTenant,
            "*" => GrantScope::AllTenants,
            t => GrantScope::One(TenantId::new(t)),
        }
    }
    pub fn covers(&self, tenant: Option<&TenantId>) -> bool {
        match (self, tenant) {
            (GrantScope::NoTenant, None) => true,
            (GrantScope::One(t), Some(asked)) => t == asked,
            (GrantScope::AllTenants, Some(_)) => true,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantStatus {
    Active,
    Revoked,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
        }
    }
    pub fn parse(value: &str) -> Self {
        if value == "active" { GrantStatus::Active } else { GrantStatus::Revoked }
    }
}

/// Access is a grant, not a side effect of having an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    pub product: ProductSlug,
    pub scope: GrantScope,
    pub roles: Vec<String>,
    pub status: GrantStatus,
    pub granted_by: String,
    pub granted_at: i64,
    pub expires_at: Option<i64>,
}

impl Grant {
    pub fn is_active_at(&self, now: i64) -> bool {
        self.status == GrantStatus::Active && self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_claim_names_a_user_only_by_the_user_id_prefix() {
        assert_eq!(Subject::of_claim("usr_abc"), Subject::User(UserId::new("usr_abc")));
        // Client ids may not begin with a reserved prefix, so anything else is a client; a
        // lookalike stays a client and is never read as a user.
        for client in ["ops-bot", "usr", "USR_abc", "client:usr_abc", ""] {
            assert_eq!(Subject::of_claim(client), Subject::Client(ClientId::new(client)), "{client:?}");
        }
        assert_eq!(Subject::of_claim("ops-bot").actor(), "client:ops-bot");
        assert_eq!(Subject::of_claim("usr_abc").actor(), "usr_abc");
        assert!(crate::spec::RESERVED_ID_PREFIXES.contains(&USER_ID_PREFIX));
    }

    fn app(kind: ApplicationType, uris: &[&str]) -> Client {
        Client {
            application_type: kind,
            redirect_uris: uris.iter().map(|u| RedirectUri::parse(u).unwrap()).collect(),
            ..crate::policy::tests::client("crm", &[])
        }
    }

    #[test]
    fn a_native_apps_loopback_redirect_takes_any_port_and_nothing_else_moves() {
        let native = app(
            ApplicationType::Native,
            &["http://127.0.0.1/cb", "http://[::1]/cb?x=1", "com.example.app:/oauth2redirect"],
        );
        for good in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/cb",
            "http://127.0.0.1:51004/cb",
            "http://127.0.0.1:65535/cb",
            "http://[::1]:8000/cb?x=1",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(native.registered_redirect(good).is_some(), "{good}");
        }
        for bad in [
            // Off by one character anywhere but the port.
            "http://127.0.0.1:51004/cb/",
            "http://127.0.0.1:51004/c",
            "http://127.0.0.1:51004/cb?",
            "http://127.0.0.1:51004/cb#x",
            "http://127.0.0.1:51004/CB",
            "https://127.0.0.1:51004/cb",
            "HTTP://127.0.0.1:51004/cb",
            "http://127.0.0.2:51004/cb",
            "http://127.0.0.1.evil.test/cb",
            "http://127.0.0.1@evil.test/cb",
            "http://127.0.0.1:51004@evil.test/cb",
            "http://localhost:51004/cb",
            "http://[::1]:8000/cb",
            "http://[::1]:8000/cb?x=2",
            "http://127.0.0.1:8000/cb?x=1",
            // A port that is no port, or another spelling of one.
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:080/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:123456/cb",
            "http://127.0.0.1:+80/cb",
            "com.example.app:/oauth2redirect/",
            "com.example.app://oauth2redirect",
        ] {
            assert!(native.registered_redirect(bad).is_none(), "{bad}");
        }
        // A web application's loopback redirect is exact, port and all.
        let web = app(ApplicationType::Web, &["http://127.0.0.1:9/cb"]);
        assert!(web.registered_redirect("http://127.0.0.1:9/cb").is_some());
        assert!(web.registered_redirect("http://127.0.0.1:10/cb").is_none());
        assert!(web.registered_redirect("http://127.0.0.1/cb").is_none());
    }
}
