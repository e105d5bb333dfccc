//! Token families, authorization codes, refresh tokens and revoked access-token ids.
//!
//! A family is everything issued from one authorization code: its access tokens (whose `jti`
//! names the family), and its chain of refresh tokens. Replaying a code or a rotated refresh
//! token revokes the family (RFC 9700 §4.14.2, RFC 6749 §4.1.2 and §10.5).

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, from_json, grants::grant as grant_row, on_pool, on_read, users::user as user_row};
use portico_model::{ClientId, FamilyId, Grant, Grantee, ProductSlug, Sid, TenantId, User, UserId};
use sqlx::QueryBuilder;
use std::sync::LazyLock;

/// One family of tokens, issued to one user through one client for one product (and, when the
/// product has tenants, one tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub id: FamilyId,
    pub subject: UserId,
    pub client_id: ClientId,
    pub product: ProductSlug,
    pub tenant: Option<TenantId>,
    pub sid: Option<Sid>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The first family of the tree this one was switched from (`None`: it is a first family).
    pub origin: Option<FamilyId>,
    /// The tree began on a tenant's own domain: it stays in that tenant.
    pub pinned: bool,
}

/// A `token_families` row as stored (`tenant` is `''` for none).
#[derive(sqlx::FromRow)]
struct FamilyRow {
    id: String,
    subject: String,
    client_id: String,
    product: String,
    tenant: String,
    sid: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    origin: Option<String>,
    pinned: bool,
}

impl From<FamilyRow> for Family {
    fn from(r: FamilyRow) -> Self {
        Family {
            id: FamilyId::new(r.id),
            subject: UserId::new(r.subject),
            client_id: ClientId::new(r.client_id),
            product: ProductSlug::new(r.product),
            tenant: (!r.tenant.is_empty()).then(|| TenantId::new(r.tenant)),
            sid: r.sid.map(Sid::new),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            origin: r.origin.map(FamilyId::new),
            pinned: r.pinned,
        }
    }
}

impl Family {
    /// The stored form of the tenant: `''` for none.
    fn tenant_key(&self) -> &str {
        self.tenant.as_ref().map_or("", TenantId::as_str)
    }
    /// The first family of this one's tree: its `origin`, or itself.
    pub fn root(&self) -> &FamilyId {
        self.origin.as_ref().unwrap_or(&self.id)
    }
}

/// The outcome of presenting an authorization code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeConsumption {
    /// First use: the code's data, now marked consumed.
    Consumed {
        family: FamilyId,
        data: String,
        expires_at: i64,
    },
    /// The code was used before: a replay.
    AlreadyConsumed {
        family: FamilyId,
    },
    NotFound,
}

/// A refresh token as found, before rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshPeek {
    pub family: Family,
    pub data: String,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
}

/// A refresh token with everything its grant needs checked, read in one statement: the token, its
/// family, the family's user and that user's grants for the family's product, and whether the
/// family's product session has ended.
#[derive(Clone, Debug)]
pub struct RefreshContext {
    pub token: RefreshPeek,
    pub user: Option<User>,
    pub grants: Vec<Grant>,
    pub session_ended: bool,
}

/// One refresh-token rotation: `old_hash` is spent, `new_hash` takes its place in the family.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub old_hash: String,
    pub family_id: FamilyId,
    pub new_hash: String,
    pub new_data: String,
    pub now: i64,
    pub new_expires_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshRotation {
    Rotated,
    /// Someone rotated it first: the token was presented twice.
    Reused,
}

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (hash, family, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
const FAMILY_COLUMNS: &str = "f.id, f.subject, f.client_id, f.product, f.tenant, f.sid, f.created_at, f.revoked_at, f.origin, f.pinned";
const TOKEN_COLUMNS: &str = "r.data, r.expires_at, r.rotated_at";
const TOKEN_FROM: &str = "FROM refresh_tokens r JOIN token_families f ON f.id = r.family";
static PEEK_SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {FAMILY_COLUMNS}, {TOKEN_COLUMNS} {TOKEN_FROM} WHERE r.hash = $1"));
/// The same with the family's user (`u_…`) and that user's grants for the family's product
/// (`g_…`), one row per grant: [`ContextRow`].
static CONTEXT_SQL: LazyLock<String> = LazyLock::new(|| {
    let prefixed = |columns: &str, t: &str| columns.split(", ").map(|c| format!("{t}.{c} AS {t}_{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {FAMILY_COLUMNS}, {TOKEN_COLUMNS}, ps.ended_at AS ps_ended_at, {user}, {grant} {TOKEN_FROM}
         LEFT JOIN product_sessions ps ON ps.sid = f.sid
         LEFT JOIN users u ON u.id = f.subject
         LEFT JOIN grants g ON g.grantee = f.subject AND g.product = f.product
         WHERE r.hash = $1",
        user = prefixed(crate::users::COLUMNS, "u"),
        grant = prefixed(crate::grants::COLUMNS, "g"),
    )
});

/// A [`PEEK_SQL`] row.
#[derive(sqlx::FromRow)]
struct PeekRow {
    #[sqlx(flatten)]
    family: FamilyRow,
    data: String,
    expires_at: i64,
    rotated_at: Option<i64>,
}

impl From<PeekRow> for RefreshPeek {
    fn from(r: PeekRow) -> Self {
        RefreshPeek {
            family: r.family.into(),
            data: r.data,
            expires_at: r.expires_at,
            rotated_at: r.rotated_at,
        }
    }
}

/// One row of [`CONTEXT_SQL`]: the token, the user when there is one, one grant when there is one.
#[derive(sqlx::FromRow)]
struct ContextRow {
    #[sqlx(flatten)]
    token: PeekRow,
    ps_ended_at: Option<i64>,
    u_id: Option<String>,
    u_email: Option<String>,
    u_email_verified: Option<bool>,
    u_name: Option<String>,
    u_status: Option<String>,
    u_created_at: Option<i64>,
    g_grantee: Option<String>,
    g_product: Option<String>,
    g_tenant: Option<String>,
    g_roles: Option<String>,
    g_status: Option<String>,
    g_granted_by: Option<String>,
    g_granted_at: Option<i64>,
    g_expires_at: Option<i64>,
}

impl ContextRow {
    fn user(&self) -> Option<User> {
        Some(user_row(crate::users::Row {
            id: self.u_id.clone()?,
            email: self.u_email.clone()?,
            email_verified: self.u_email_verified?,
            name: self.u_name.clone()?,
            status: self.u_status.clone()?,
            created_at: self.u_created_at?,
        }))
    }

    fn take_grant(&mut self) -> Option<Result<Grant>> {
        Some(grant_row(crate::grants::Row {
            grantee: self.g_grantee.take()?,
            product: self.g_product.take()?,
            tenant: self.g_tenant.take()?,
            roles: self.g_roles.take()?,
            status: self.g_status.take()?,
            granted_by: self.g_granted_by.take()?,
            granted_at: self.g_granted_at.take()?,
            expires_at: self.g_expires_at.take(),
        }))
    }
}

impl Store {
    /// Stores a new authorization code and the family it will start; a family in a tenant also
    /// becomes the tenant the user last chose in that product (the picker lists it first).
    pub async fn issue_code(&self, code_hash: &str, fam: &Family, data: &str, expires_at: i64) -> Result<()> {
        let mut tx = self.write().await?;
        tx.issue_code(code_hash, fam, data, expires_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn family(&self, id: &FamilyId) -> Result<Option<Family>> {
        let sql = format!("SELECT {FAMILY_COLUMNS} FROM token_families f WHERE f.id = $1");
        let row: Option<FamilyRow> = on_read!(self, pool => sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        Ok(row.map(Into::into))
    }

    /// Starts a family without a code (token exchange, hand-off).
    pub async fn insert_family(&self, fam: &Family) -> Result<()> {
        let mut tx = self.write().await?;
        tx.insert_family(fam).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_refresh(&self, hash: &str, family_id: &str, data: &str, now: i64, expires_at: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(INSERT_REFRESH)
            .bind(hash).bind(family_id).bind(data).bind(now).bind(expires_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The refresh token with this hash and its family, without changing anything.
    pub async fn peek_refresh(&self, hash: &str) -> Result<Option<RefreshPeek>> {
        let row: Option<PeekRow> = on_read!(self, pool => sqlx::query_as(&PEEK_SQL).bind(hash).fetch_optional(pool).await)?;
        Ok(row.map(Into::into))
    }

    /// The refresh token `hash` with its family's user and that user's grants for the family's product.
    pub async fn refresh_context(&self, hash: &str) -> Result<Option<RefreshContext>> {
        let rows: Vec<ContextRow> = on_read!(self, pool => sqlx::query_as(&CONTEXT_SQL).bind(hash).fetch_all(pool).await)?;
        let Some(first) = rows.first() else { return Ok(None) };
        let user = first.user();
        let session_ended = first.ps_ended_at.is_some();
        let mut rows = rows;
        let grants = rows.iter_mut().filter_map(ContextRow::take_grant).collect::<Result<_>>()?;
        let token = rows.swap_remove(0).token.into();
        Ok(Some(RefreshContext {
            token,
            user,
            grants,
            session_ended,
        }))
    }

    /// The roles of the grant behind a client's access token, in one read: `None` when its `jti`
    /// was revoked or the client's grant for the product (and the token's `tenant`) is not active
    /// now — the SQL form of `Grant::is_active_at` and `GrantScope::covers`: a grant naming the
    /// tenant wins over an all-tenants grant, as `require_active_grant` picks them.
    pub async fn client_token_grant(
        &self,
        jti: &str,
        client: &Grantee,
        product: &ProductSlug,
        tenant: Option<&TenantId>,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let tenant = tenant.map_or("", TenantId::as_str);
        let (revoked, roles): (i64, Option<String>) = on_read!(self, pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1),
                    (SELECT roles FROM grants WHERE grantee = $2 AND product = $3 AND status = 'active'
                       AND (tenant = $5 OR ($5 <> '' AND tenant = '*'))
                       AND (expires_at IS NULL OR expires_at > $4)
                     ORDER BY CASE WHEN tenant = '*' THEN 1 ELSE 0 END LIMIT 1)")
            .bind(jti).bind(client.key()).bind(product.as_str()).bind(now).bind(tenant).fetch_one(pool).await)?;
        match (revoked, roles) {
            (0, Some(roles)) => Ok(Some(from_json(&roles, "grant roles")?)),
            _ => Ok(None),
        }
    }

    /// Whether an access token is still good at the source: its `jti` not revoked and, when it
    /// belongs to a family, the family not revoked.
    pub async fn access_token_live(&self, jti: &str, family_id: Option<&str>) -> Result<bool> {
        let row: (i64,) = on_read!(self, pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1) + (SELECT COUNT(*) FROM token_families WHERE id = $2 AND revoked_at IS NOT NULL)")
            .bind(jti).bind(family_id).fetch_one(pool).await)?;
        Ok(row.0 == 0)
    }
}

impl Tx<'_> {
    /// Stores a new authorization code and the family it will start; a family in a tenant also
    /// becomes the tenant the user last chose in that product (the picker lists it first).
    pub async fn issue_code(&mut self, code_hash: &str, fam: &Family, data: &str, expires_at: i64) -> Result<()> {
        self.insert_family(fam).await?;
        on_tx!(self, t => {
            sqlx::query("INSERT INTO auth_codes (hash, family, data, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(code_hash).bind(fam.id.as_str()).bind(data).bind(expires_at).execute(&mut **t).await?;
            if let Some(tenant) = &fam.tenant {
                sqlx::query("INSERT INTO tenant_choices (user_id, product, tenant, chosen_at) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (user_id, product) DO UPDATE SET tenant = excluded.tenant, chosen_at = excluded.chosen_at")
                    .bind(fam.subject.as_str()).bind(fam.product.as_str()).bind(tenant.as_str()).bind(fam.created_at).execute(&mut **t).await?;
            }
        });
        Ok(())
    }

    /// A family's refresh token (in this transaction; [`Store::insert_refresh`] outside one).
    pub async fn insert_refresh(&mut self, hash: &str, family_id: &str, data: &str, now: i64, expires_at: i64) -> Result<()> {
        on_tx!(self, t => sqlx::query(INSERT_REFRESH).bind(hash).bind(family_id).bind(data).bind(now).bind(expires_at).execute(&mut **t).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn insert_family(&mut self, f: &Family) -> Result<()> {
        on_tx!(self, t => sqlx::query("INSERT INTO token_families (id, subject, client_id, product, tenant, sid, created_at, origin, pinned) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(f.id.as_str()).bind(f.subject.as_str()).bind(f.client_id.as_str()).bind(f.product.as_str()).bind(f.tenant_key())
            .bind(f.sid.as_ref().map(Sid::as_str)).bind(f.created_at).bind(f.origin.as_ref().map(FamilyId::as_str)).bind(f.pinned)
            .execute(&mut **t).await.map(|_| ()))?;
        Ok(())
    }

    /// A family switched from `source` to another tenant (`new.origin` is the tree's first
    /// family), with its first refresh token: made only while `source` is live, and in place of
    /// any family of the tree already in that tenant (revoked), so a tree holds one live family per
    /// tenant. `false` (nothing written) when `source` was revoked meanwhile.
    pub async fn insert_switched_family(&mut self, new: &Family, source: &FamilyId, refresh_hash: &str, data: &str, expires_at: i64) -> Result<bool> {
        // The source's row is locked (PostgreSQL; SQLite has one writer): a sign-out that revoked
        // it first is seen here. One that revokes it after may miss the new row, on PostgreSQL;
        // the new family's refreshes then stop at its ended product session (`refresh_context`).
        let sql = match self.inner {
            crate::tx::Inner::Postgres(_) => "SELECT id FROM token_families WHERE id = $1 AND revoked_at IS NULL FOR UPDATE",
            crate::tx::Inner::Sqlite(_) => "SELECT id FROM token_families WHERE id = $1 AND revoked_at IS NULL",
        };
        let live: Option<(String,)> = on_tx!(self, t => sqlx::query_as(sql).bind(source.as_str()).fetch_optional(&mut **t).await)?;
        if live.is_none() {
            return Ok(false);
        }
        on_tx!(self, t => sqlx::query("UPDATE token_families SET revoked_at = $3, revoked_reason = 'switched_again'
                                      WHERE (id = $1 OR origin = $1) AND tenant = $2 AND revoked_at IS NULL")
            .bind(new.root().as_str()).bind(new.tenant_key()).bind(new.created_at).execute(&mut **t).await.map(|_| ()))?;
        self.insert_family(new).await?;
        self.insert_refresh(refresh_hash, new.id.as_str(), data, new.created_at, expires_at).await?;
        Ok(true)
    }

    /// Marks a code consumed, atomically: of two concurrent presentations exactly one gets
    /// `Consumed`. What the caller does about a replay (revoke the family, audit) commits with it.
    pub async fn consume_code(&mut self, code_hash: &str, now: i64) -> Result<CodeConsumption> {
        let (consumed, seen): (Option<(String, String, i64)>, Option<(String,)>) = on_tx!(self, t => {
            let consumed = sqlx::query_as("UPDATE auth_codes SET consumed_at = $2 WHERE hash = $1 AND consumed_at IS NULL RETURNING family, data, expires_at")
                .bind(code_hash).bind(now).fetch_optional(&mut **t).await?;
            let seen = match consumed {
                Some(_) => None,
                None => sqlx::query_as("SELECT family FROM auth_codes WHERE hash = $1").bind(code_hash).fetch_optional(&mut **t).await?,
            };
            (consumed, seen)
        });
        Ok(match (consumed, seen) {
            (Some((family, data, expires_at)), _) => CodeConsumption::Consumed {
                family: FamilyId::new(family),
                data,
                expires_at,
            },
            (None, Some((family,))) => CodeConsumption::AlreadyConsumed { family: FamilyId::new(family) },
            (None, None) => CodeConsumption::NotFound,
        })
    }

    /// Revokes a family and the rest of its tree (the families switched from it to other tenants,
    /// or it from them): their refresh tokens stop working and their access tokens introspect
    /// inactive. Whether any of them was live.
    pub async fn revoke_family(&mut self, id: &FamilyId, reason: &str, now: i64) -> Result<bool> {
        let n = on_tx!(self, t => sqlx::query(
            "UPDATE token_families SET revoked_at = $2, revoked_reason = $3
             WHERE revoked_at IS NULL AND (id = $1 OR id = (SELECT COALESCE(origin, id) FROM token_families WHERE id = $1)
                   OR origin = (SELECT COALESCE(origin, id) FROM token_families WHERE id = $1))")
            .bind(id.as_str()).bind(now).bind(reason).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Replaces each `old_hash` with a new refresh token in the same family (the group-commit
    /// writer puts a whole batch in one transaction). Each rotation is atomic on its own: of two
    /// presentations of one token, in one batch or in two, exactly one gets `Rotated`. Results are
    /// in the order given.
    pub async fn rotate_refresh_batch(&mut self, rotations: &[Rotation]) -> Result<Vec<RefreshRotation>> {
        let mut spent = std::collections::HashSet::new();
        on_tx!(self, t => {
            for chunk in rotations.chunks(ROTATIONS_PER_STATEMENT) {
                let mut q = QueryBuilder::new("");
                push_spend(&mut q, chunk);
                let rows: Vec<(String,)> = q.build_query_as().persistent(crate::keep_prepared(chunk.len())).fetch_all(&mut **t).await?;
                spent.extend(rows.into_iter().map(|(h,)| h));
            }
        });
        let results = outcomes(rotations, spent);
        let fresh = fresh(rotations, &results);
        on_tx!(self, t => {
            for chunk in fresh.chunks(ROTATIONS_PER_STATEMENT) {
                let mut q = QueryBuilder::new("");
                push_successors(&mut q, chunk);
                q.build().persistent(crate::keep_prepared(chunk.len())).execute(&mut **t).await?;
            }
        });
        Ok(results)
    }

    /// Records a revoked access token until it would have expired anyway.
    pub async fn revoke_jti(&mut self, jti: &str, expires_at: i64) -> Result<()> {
        on_tx!(self, t => sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti).bind(expires_at).execute(&mut **t).await.map(|_| ()))?;
        Ok(())
    }
}

/// Rotations per statement (five values each in the `INSERT`: well under both back ends'
/// bind-parameter limits).
pub(crate) const ROTATIONS_PER_STATEMENT: usize = 512;

/// `UPDATE … RETURNING hash` spending each rotation's old token that was not spent before: the
/// hashes it returns are the tokens this statement spent.
pub(crate) fn push_spend<'a, DB: sqlx::Database>(q: &mut QueryBuilder<'a, DB>, chunk: &'a [Rotation])
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let Some(first) = chunk.first() else { return };
    q.push("UPDATE refresh_tokens SET rotated_at = ")
        .push_bind(first.now)
        .push(" WHERE rotated_at IS NULL AND hash IN (");
    let mut list = q.separated(", ");
    for r in chunk {
        list.push_bind(r.old_hash.as_str());
    }
    q.push(") RETURNING hash");
}

/// Each rotation's outcome, in the order given, from the set of tokens the batch spent. A token
/// presented twice in one batch was spent once: the first presentation gets it.
pub(crate) fn outcomes(rotations: &[Rotation], mut spent: std::collections::HashSet<String>) -> Vec<RefreshRotation> {
    rotations
        .iter()
        .map(|r| {
            if spent.remove(&r.old_hash) {
                RefreshRotation::Rotated
            } else {
                RefreshRotation::Reused
            }
        })
        .collect()
}

/// The rotations that spent their token: their successors are stored.
pub(crate) fn fresh<'r>(rotations: &'r [Rotation], outcomes: &[RefreshRotation]) -> Vec<&'r Rotation> {
    rotations
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == RefreshRotation::Rotated)
        .map(|(r, _)| r)
        .collect()
}

/// One multi-row `INSERT` of the successors of `chunk` (at most [`ROTATIONS_PER_STATEMENT`]).
pub(crate) fn push_successors<'a, DB: sqlx::Database>(q: &mut QueryBuilder<'a, DB>, chunk: &[&'a Rotation])
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push("INSERT INTO refresh_tokens (hash, family, data, created_at, expires_at) ");
    q.push_values(chunk.iter().copied(), |mut b, r| {
        b.push_bind(r.new_hash.as_str())
            .push_bind(r.family_id.as_str())
            .push_bind(r.new_data.as_str())
            .push_bind(r.now)
            .push_bind(r.new_expires_at);
    });
}
