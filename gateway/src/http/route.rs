//! One served route: method, path, handler, who may call it, and its documentation. The
//! route tables of REST, GraphQL, WebSocket and the probes are lists of these, which both
//! build the router and document it (`GET /openapi.json`), so the two cannot drift apart.

use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};

use aerolith_common::Error;
use aerolith_common::auth::Role;

use super::AppState;
use super::error::ApiError;
use super::openapi::{Method, Op};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (probes, metrics, the OpenAPI document).
    Open,
    /// A caller whose token has at least this role (API.md "Authentication").
    Role(Role),
}

/// One served route.
pub struct Route {
    /// The HTTP method, the only one `handler` serves.
    pub method: Method,
    /// The path in axum's syntax, which is also OpenAPI's (`/v1/collections/{c}`).
    pub path: &'static str,
    /// The handler, as an axum method router for `method` alone.
    pub handler: MethodRouter<AppState>,
    /// Who may call it; `Role(Admin)` unless the table says otherwise, so a route added
    /// without a thought is closed rather than open.
    pub access: Access,
    /// Whether the token may come as `?access_token=` (WebSocket upgrades, which a browser
    /// opens with `new WebSocket(url)` and cannot give headers).
    pub token_in_query: bool,
    /// Whether an upgrade may come without a token, which the protocol's first message
    /// then carries (GraphQL's `connection_init`); a token given on the upgrade still holds.
    pub token_later: bool,
    /// How a refused request is answered (the REST error body, or GraphQL's shape).
    pub refuse: fn(Error) -> Response,
    /// What `/openapi.json` says about the route.
    pub doc: Op,
}

/// The REST error body: [`Route::refuse`] of every route but GraphQL's endpoint.
pub fn rest_refusal(e: Error) -> Response {
    ApiError::from(e).into_response()
}

impl Route {
    /// A route whose method router is built from `method`, so the two always agree.
    pub fn new<Hd, T>(method: Method, path: &'static str, handler: Hd, doc: Op) -> Route
    where
        Hd: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            method,
            path,
            handler: on(method.filter(), handler),
            access: Access::Role(Role::Admin),
            token_in_query: false,
            token_later: false,
            refuse: rest_refusal,
            doc,
        }
    }

    /// Callers with at least `role` may call it.
    pub fn needs(self, role: Role) -> Route {
        Route {
            access: Access::Role(role),
            ..self
        }
    }

    /// Anyone may call it, without a token.
    pub fn open(self) -> Route {
        Route {
            access: Access::Open,
            ..self
        }
    }

    /// The token may come as the `access_token` query parameter.
    pub fn token_in_query(self) -> Route {
        Route {
            token_in_query: true,
            ..self
        }
    }

    /// The token may come in the protocol's first message instead of on the upgrade.
    pub fn token_later(self) -> Route {
        Route {
            token_later: true,
            ..self
        }
    }

    /// Refusals are answered by `refuse`.
    pub fn refused_with(self, refuse: fn(Error) -> Response) -> Route {
        Route { refuse, ..self }
    }
}
