//! The operator's commands: users, grants and signing keys, through the protocol functions the
//! admin API uses (each audits).

use super::{GrantArgs, GrantCmd, KeysCmd, UserCmd};
use crate::config::Config;
use crate::suite::parse_duration;
use crate::{NewKey, open_store};
use portico_model::*;
use portico_protocol::{admin, keys};
use std::io::Read;

pub(super) async fn user(cfg: &Config, cmd: UserCmd, now: i64) -> anyhow::Result<()> {
    let (store, _) = open_store(cfg, NewKey::Refused).await?;
    match cmd {
        UserCmd::Add {
            email,
            name,
            password_stdin,
            skip_password_policy,
        } => {
            let password = match password_stdin {
                true => Some(read_password()?),
                false => None,
            };
            // The blocklist is read only when a password is to be checked.
            let policy = match (&password, skip_password_policy) {
                (Some(_), false) => Some(cfg.password_policy()?),
                _ => None,
            };
            let password = password.map(|pw| match &policy {
                Some(policy) => admin::NewPassword::Checked(pw, policy),
                None => admin::NewPassword::OperatorBypass(pw),
            });
            let u = admin::add_user(&store, &email, name.as_deref().unwrap_or_default(), password, &admin::Caller::cli(), now).await?;
            println!("added user {email} ({})", u.id);
        }
        UserCmd::Disable { email } => set_status(cfg, &store, &email, UserStatus::Disabled, now).await?,
        UserCmd::Enable { email } => set_status(cfg, &store, &email, UserStatus::Active, now).await?,
        UserCmd::List => {
            for u in store.list_users().await? {
                println!("{}\t{}\t{}\t{}", u.id, u.email, u.status.as_str(), u.name);
            }
        }
    }
    Ok(())
}

/// The configuration as the server sees it, for the admin functions the CLI shares with the API.
async fn snapshot(cfg: &Config, store: &portico_store::Store) -> anyhow::Result<portico_protocol::snapshot::Snapshot> {
    Ok(portico_protocol::snapshot::Snapshot::build(store.load_config().await?, &cfg.issuer))
}

/// Disables or enables a user; a running server delivers the back-channel logout notices a
/// disable queues (its outbox worker polls every second).
async fn set_status(cfg: &Config, store: &portico_store::Store, email: &str, status: UserStatus, now: i64) -> anyhow::Result<()> {
    let config = snapshot(cfg, store).await?;
    let (_, changed) = admin::set_user_status(store, &config, email, status, &admin::Caller::cli(), now).await?;
    let word = if status == UserStatus::Disabled { "disabled" } else { "enabled" };
    println!("{} {email}", if changed { word } else { "already" });
    Ok(())
}

pub(super) async fn grant(cfg: &Config, cmd: GrantCmd, now: i64) -> anyhow::Result<()> {
    let (store, _) = open_store(cfg, NewKey::Refused).await?;
    let config = snapshot(cfg, &store).await?;
    let by = admin::Caller::cli();
    let key = |a: &GrantArgs| admin::GrantKey {
        user: Some(a.user.clone()),
        client: None,
        product: a.product.clone(),
        tenant: a.tenant.clone(),
    };
    match cmd {
        GrantCmd::Add(a) => {
            let expires_at = match &a.expires {
                None => None,
                Some(x) => {
                    Some(crate::suite::parse_instant(x).ok_or_else(|| anyhow::anyhow!("--expires {x:?} is not an RFC 3339 time like 2027-01-31T00:00:00Z"))?)
                }
            };
            let k = key(&a);
            let new = admin::NewGrant {
                user: k.user,
                client: None,
                product: k.product,
                tenant: k.tenant,
                roles: a.roles.clone(),
                expires_at,
            };
            admin::add_grant(&store, &config, &new, &by, now).await?;
            println!("granted {} on {} to {}", a.roles.join(","), a.product, a.user);
        }
        GrantCmd::Revoke(a) => {
            admin::revoke_grant(&store, &config, &key(&a), &by, now).await?;
            println!("revoked the grant on {} from {}", a.product, a.user);
        }
        GrantCmd::List { user } => {
            let users = store.list_users().await?;
            let email = |g: &Grant| match &g.grantee {
                Grantee::User(id) => users.iter().find(|u| &u.id == id).map(|u| u.email.clone()).unwrap_or_else(|| id.to_string()),
                Grantee::Client(c) => format!("client:{c}"),
            };
            for g in store.list_grants().await? {
                if user.as_ref().is_some_and(|u| !email(&g).eq_ignore_ascii_case(u)) {
                    continue;
                }
                let tenant = match &g.scope {
                    GrantScope::NoTenant => "-".to_owned(),
                    GrantScope::AllTenants => "*".to_owned(),
                    GrantScope::One(id) => config.tenant(id).map_or_else(|| id.to_string(), |t| t.slug.clone()),
                };
                println!("{}\t{}\t{}\t{}\t{}", email(&g), g.product, tenant, g.roles.join(","), g.status.as_str());
            }
        }
    }
    Ok(())
}

/// `portico keys rotate|list`.
pub(super) async fn keys(cfg: &Config, cmd: KeysCmd, now: i64) -> anyhow::Result<()> {
    let (store, kek) = open_store(cfg, NewKey::Refused).await?;
    match cmd {
        KeysCmd::Rotate { alg, activate_in } => {
            let alg = SigningAlg::parse(&alg).ok_or_else(|| anyhow::anyhow!("--alg must be EdDSA, ES256 or RS256"))?;
            let delay = if activate_in == "0" || activate_in == "0s" {
                0
            } else {
                parse_duration(&activate_in).ok_or_else(|| anyhow::anyhow!("--activate-in: not a duration like 1h"))?
            };
            let row = keys::publish(&store, &kek, alg, now + delay, "cli", now).await?;
            println!("published key {} ({}); it signs from {} (in {delay} s)", row.kid, row.alg, row.activate_at);
        }
        KeysCmd::List => {
            for k in store.list_keys().await? {
                println!("{}\t{}\tactivates {}", k.kid, k.alg, k.activate_at);
            }
        }
    }
    Ok(())
}

/// A password from standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut pw = String::new();
    std::io::stdin().read_to_string(&mut pw)?;
    Ok(pw.trim_end_matches(['\n', '\r']).to_owned())
}
