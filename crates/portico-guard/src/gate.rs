//! Gates as tower layers, for whole routers or routes: each verifies the bearer token (once per
//! request, shared with the [`crate::Principal`] extractor behind it) and checks one rule.
//!
//! ```no_run
//! # async fn run(guard: portico_guard::Guard) {
//! use axum::routing::{get, post};
//! async fn list() {}
//! async fn create() {}
//! let api: axum::Router = axum::Router::new()
//!     .route("/tenants/{tenant}/contacts", get(list).route_layer(guard.require_permission("read:contacts")))
//!     .route("/tenants/{tenant}/contacts/new", post(create).route_layer(guard.require_permission("write:contacts")))
//!     .route_layer(guard.require_tenant_param("tenant"));
//! # }
//! ```

use crate::web::authenticate;
use crate::{Guard, Principal, Refusal};
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Clone, Debug)]
enum Rule {
    Authenticated,
    Permission(String),
    Scope(String),
    Acr(Vec<String>),
    TenantParam(String),
}

impl Rule {
    async fn check(&self, p: &Principal, parts: &mut Parts) -> Result<(), Refusal> {
        match self {
            Rule::Authenticated => Ok(()),
            Rule::Permission(name) => p.require_permission(name).map(drop),
            Rule::Scope(name) => p.require_scope(name).map(drop),
            Rule::Acr(values) => p.require_acr(&values.iter().map(String::as_str).collect::<Vec<_>>()).map(drop),
            Rule::TenantParam(name) => {
                let params = RawPathParams::from_request_parts(parts, &()).await.map_err(|_| Refusal::forbidden("tenant"))?;
                match params.iter().find(|(k, _)| k == name) {
                    Some((_, tenant)) => p.require_tenant(tenant).map(drop),
                    // A route without the parameter is a wiring mistake: refuse rather than pass.
                    None => Err(Refusal::forbidden("tenant")),
                }
            }
        }
    }
}

/// A tower layer that lets a request through only with a verified token that meets its rule.
#[derive(Clone, Debug)]
pub struct Gate {
    guard: Guard,
    rule: Rule,
}

impl Guard {
    fn gate(&self, rule: Rule) -> Gate {
        Gate { guard: self.clone(), rule }
    }

    /// A layer requiring only a verified token for this product.
    pub fn authenticated(&self) -> Gate {
        self.gate(Rule::Authenticated)
    }

    /// A layer requiring the permission `name` (403 `insufficient_scope` without it).
    pub fn require_permission(&self, name: &str) -> Gate {
        self.gate(Rule::Permission(name.to_owned()))
    }

    /// A layer requiring the scope `name` (403, naming the scope in the challenge).
    pub fn require_scope(&self, name: &str) -> Gate {
        self.gate(Rule::Scope(name.to_owned()))
    }

    /// A layer requiring one of the `acceptable` authentication context classes.
    pub fn require_acr(&self, acceptable: &[&str]) -> Gate {
        self.gate(Rule::Acr(acceptable.iter().map(|s| (*s).to_owned()).collect()))
    }

    /// The tenant gate: a layer (use it as a `route_layer`) requiring the path parameter `name`
    /// to equal the token's tenant. A token without a tenant, or a route without the parameter,
    /// is refused.
    pub fn require_tenant_param(&self, name: &str) -> Gate {
        self.gate(Rule::TenantParam(name.to_owned()))
    }
}

impl<S> tower::Layer<S> for Gate {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService { gate: self.clone(), inner }
    }
}

/// The service a [`Gate`] wraps around a route.
#[derive(Clone, Debug)]
pub struct GateService<S> {
    gate: Gate,
    inner: S,
}

impl<S> tower::Service<Request> for GateService<S>
where
    S: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let gate = self.gate.clone();
        // The clone takes the place of the service polled ready (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let passed = match authenticate(&gate.guard, &mut parts).await {
                Ok(principal) => gate.rule.check(&principal, &mut parts).await,
                Err(refusal) => Err(refusal),
            };
            match passed {
                Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}
