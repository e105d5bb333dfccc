//! `GET /api/v1/openapi.json`: the admin API described in OpenAPI 3.1, for clients to generate
//! from and for operators to read. The admin API tests check the live answers against it.

use crate::app::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn errors(codes: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    codes.iter().map(|(code, what)| ((*code).to_owned(), problem(what))).collect()
}

const UNAUTHENTICATED: (&str, &str) = ("401", "No bearer token, or not a live access token for portico-admin");
const FORBIDDEN: (&str, &str) = ("403", "The token lacks the permission this operation needs");

fn grant_key_params() -> Value {
    json!([
        {"name": "user", "in": "query", "description": "The holder, when a user: id (usr_…) or email. Exactly one of user or client.", "schema": {"type": "string"}},
        {"name": "client", "in": "query", "description": "The holder, when a client: its client_id.", "schema": {"type": "string"}},
        {"name": "product", "in": "query", "required": true, "schema": {"type": "string"}},
        {"name": "tenant", "in": "query", "description": "Tenant slug or id, or * for every tenant; absent for a product without tenants.", "schema": {"type": "string"}}
    ])
}

fn user_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "User id (usr_…) or email", "schema": {"type": "string"}})
}

fn sessions_ops() -> Value {
    let mut list = errors(&[UNAUTHENTICATED, FORBIDDEN, ("404", "No such user")]);
    list.insert(
        "200".into(),
        json!({"description": "The user's live sessions, most recently active first", "content": {"application/json": {"schema": {
        "type": "object", "required": ["sessions"], "additionalProperties": false,
        "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}}}}}),
    );
    let mut end = errors(&[UNAUTHENTICATED, FORBIDDEN, ("404", "No such user")]);
    end.insert(
        "200".into(),
        json!({"description": "How many sessions ended", "content": {"application/json": {"schema": {
        "type": "object", "required": ["ended"], "additionalProperties": false, "properties": {"ended": {"type": "integer"}}}}}}),
    );
    json!({
        "get": {"summary": "List a user's sessions", "security": [{"bearer": ["users:read"]}], "parameters": [user_param()], "responses": list},
        "delete": {
            "summary": "Sign a user out everywhere",
            "description": "Ends every session of the user on every device, with the same effects as ending each one.",
            "security": [{"bearer": ["users:disable"]}],
            "parameters": [user_param()],
            "responses": end
        }
    })
}

fn user_status_op(summary: &str, description: &str) -> Value {
    let mut responses = errors(&[UNAUTHENTICATED, FORBIDDEN, ("404", "No such user")]);
    responses.insert(
        "200".into(),
        json!({"description": "The user's status now", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserStatus"}}}}),
    );
    json!({
        "post": {
            "summary": summary,
            "description": description,
            "security": [{"bearer": ["users:disable"]}],
            "parameters": [user_param()],
            "responses": responses
        }
    })
}

/// The document, with the issuer as its server.
pub fn document(issuer: &str) -> Value {
    let mut list = errors(&[UNAUTHENTICATED, FORBIDDEN, ("400", "An unknown query parameter"), ("404", "No such user")]);
    list.insert(
        "200".into(),
        json!({"description": "The grants", "content": {"application/json": {"schema": {
        "type": "object", "required": ["grants"], "additionalProperties": false,
        "properties": {"grants": {"type": "array", "items": {"$ref": "#/components/schemas/Grant"}}}}}}}),
    );
    let mut add = errors(&[
        UNAUTHENTICATED,
        FORBIDDEN,
        ("400", "The body is not a valid request"),
        ("404", "No such user or client"),
        ("415", "The body is not application/json"),
        ("422", "A field is invalid; `field` names it"),
    ]);
    add.insert(
        "201".into(),
        json!({"description": "The grant as it now stands", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Grant"}}}}),
    );
    let mut revoke = errors(&[
        UNAUTHENTICATED,
        FORBIDDEN,
        ("400", "An unknown query parameter"),
        ("404", "No active grant for that holder, product and tenant"),
        ("422", "A field is invalid; `field` names it"),
    ]);
    revoke.insert("204".into(), json!({"description": "Revoked"}));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portico admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Grants and deprovisioning. Authenticate with an access token for the built-in product portico-admin (audience <issuer>/api); its roles grant the permissions grants:read, grants:write, users:read and users:disable. Errors are RFC 9457 problem documents."
        },
        "servers": [{"url": issuer}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/grants": {
                "get": {
                    "summary": "List grants",
                    "security": [{"bearer": ["grants:read"]}],
                    "parameters": [{"name": "user", "in": "query", "description": "Only this user's grants: id (usr_…) or email", "schema": {"type": "string"}}],
                    "responses": list
                },
                "post": {
                    "summary": "Grant roles (replacing an existing grant's roles and expiry, making it active)",
                    "security": [{"bearer": ["grants:write"]}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewGrant"}}}},
                    "responses": add
                },
                "delete": {
                    "summary": "Revoke a grant",
                    "description": "Takes effect at once: refresh and introspection of the tokens it let be issued fail, the product sessions holding them end, and products with a back-channel logout URI are told.",
                    "security": [{"bearer": ["grants:write"]}],
                    "parameters": grant_key_params(),
                    "responses": revoke
                }
            },
            "/api/v1/users/{id}/disable": user_status_op(
                "Disable (deprovision) a user",
                "Ends every session (telling products with a back-channel logout URI), revokes every refresh token, makes every token introspect inactive and refuses login. The user and their grants are kept."
            ),
            "/api/v1/users/{id}/enable": user_status_op("Enable a user again", "Login is allowed again; ended sessions stay ended."),
            "/api/v1/users/{id}/sessions": sessions_ops(),
            "/api/v1/users/{id}/sessions/{session}": {
                "delete": {
                    "summary": "End one session of a user",
                    "description": "Ends the SSO session and every product session in it: their refresh tokens die, their access tokens introspect inactive, and products with a back-channel logout URI are told.",
                    "security": [{"bearer": ["users:disable"]}],
                    "parameters": [user_param(), {"name": "session", "in": "path", "required": true, "description": "The session id (sso_…) the list gives", "schema": {"type": "string"}}],
                    "responses": {
                        "204": {"description": "Ended"},
                        "401": problem(UNAUTHENTICATED.1),
                        "403": problem(FORBIDDEN.1),
                        "404": problem("No such user, or no live session of that user with that id")
                    }
                }
            },
            "/api/v1/openapi.json": {
                "get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An access token for portico-admin (RFC 9068), e.g. from client_credentials"}
            },
            "schemas": {
                "Grant": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["product", "roles", "status", "granted_by", "granted_at"],
                    "properties": {
                        "user": {"type": "string", "description": "The holder's user id, when a user"},
                        "client": {"type": "string", "description": "The holder's client_id, when a client"},
                        "product": {"type": "string"},
                        "tenant": {"type": "string", "description": "Tenant slug, * for every tenant; absent for a product without tenants"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "status": {"type": "string", "enum": ["active", "revoked"]},
                        "granted_by": {"type": "string"},
                        "granted_at": {"type": "integer", "description": "Unix seconds"},
                        "expires_at": {"type": "integer", "description": "Unix seconds after which the grant covers nothing"}
                    }
                },
                "NewGrant": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["product"],
                    "properties": {
                        "user": {"type": "string", "description": "User id (usr_…) or email. Exactly one of user or client."},
                        "client": {"type": "string"},
                        "product": {"type": "string"},
                        "tenant": {"type": "string", "description": "Tenant slug or id, or * for every tenant; required for a tenant-aware product"},
                        "roles": {"type": "array", "items": {"type": "string"}, "default": []},
                        "expires_at": {"type": "integer", "description": "Unix seconds, in the future"}
                    }
                },
                "UserStatus": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id", "email", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "email": {"type": "string"},
                        "status": {"type": "string", "enum": ["active", "disabled"]}
                    }
                },
                "Session": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id", "created_at", "last_seen", "auth_time", "user_agent", "ip", "expires_at", "products"],
                    "properties": {
                        "id": {"type": "string"},
                        "created_at": {"type": "integer"},
                        "last_seen": {"type": "integer"},
                        "auth_time": {"type": "integer"},
                        "user_agent": {"type": "string"},
                        "ip": {"type": "string"},
                        "expires_at": {"type": "integer"},
                        "products": {"type": "array", "items": {
                            "type": "object", "additionalProperties": false, "required": ["sid", "client_id", "product", "created_at", "last_seen", "ip", "user_agent"],
                            "properties": {
                                "sid": {"type": "string"}, "client_id": {"type": "string"}, "product": {"type": "string"}, "created_at": {"type": "integer"},
                                "last_seen": {"type": "integer", "description": "The last authorization in this product session"},
                                "ip": {"type": "string"}, "user_agent": {"type": "string"}
                            }
                        }}
                    }
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "required": ["type", "title", "status", "detail"],
                    "additionalProperties": false,
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "field": {"type": "string", "description": "The request field at fault (422)"}
                    }
                }
            }
        }
    })
}

pub async fn openapi(State(s): State<AppState>) -> Response {
    let mut resp = axum::Json(document(&s.provider.issuer)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}
