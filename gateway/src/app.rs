//! The HTTP port assembled: each part's routes (REST, WebSocket, GraphQL, the probes) in
//! that part's layers ([`crate::http::stack`]), the fallbacks, and the OpenAPI document of
//! exactly those routes.

use axum::Router;
use axum::routing::any;

use aerolith_common::auth::Role;

use crate::http::error::{method_not_allowed, not_found};
use crate::http::stack::{Part, layered};
use crate::http::{Access, AppState, Route, Shared, openapi, probes};

/// Every part of the port with its routes.
fn parts() -> Vec<(Part, Vec<Route>)> {
    vec![
        (Part::Rest, crate::rest::routes()),
        (Part::WebSocket, crate::ws::routes()),
        (Part::Graphql, crate::graphql::routes()),
        (Part::Probes, probes::routes()),
    ]
}

/// Every route the port serves, in documentation order.
pub fn routes() -> Vec<Route> {
    parts().into_iter().flat_map(|(_, r)| r).collect()
}

/// Every served route as (method, path), e.g. `("GET", "/v1/collections/{c}")`.
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    routes()
        .into_iter()
        .map(|r| (r.method.as_str(), r.path))
        .collect()
}

/// The HTTP port's router. Axum merges the entries that share a path into one method
/// router (it panics only on a repeated method). Unknown routes and methods are answered
/// in the REST part's layers, to any caller with a token.
pub fn router(mut shared: Shared) -> Router {
    shared.openapi = serde_json::to_vec(&openapi::build(&routes()))
        .unwrap_or_default()
        .into();
    let console_admin = shared.console_admin.clone();
    let state = AppState::new(shared);
    let mut router = Router::new();
    for (part, routes) in parts() {
        for route in routes {
            let path = route.path;
            let open = route.access == Access::Open;
            let mut handler = layered(part, route, &state);
            if open {
                // An open path's other methods are answered without a token too (405 with
                // `Allow`): that the path exists is no secret, and the answer holds no data.
                handler = handler.fallback(method_not_allowed);
            }
            router = router.route(path, handler);
        }
    }
    let fallback = |handler| {
        let route = Route {
            handler,
            ..Route::new(
                openapi::Method::Get,
                "",
                not_found,
                openapi::Op::new("", "", ""),
            )
            .needs(Role::Read)
        };
        layered(Part::Rest, route, &state)
    };
    router
        // The web console's static pages: no token (they hold no data), their own headers.
        .merge(crate::console::router(console_admin))
        .fallback(fallback(any(not_found)))
        .method_not_allowed_fallback(fallback(any(method_not_allowed)))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tables_build_a_router() {
        // Axum panics on a repeated method for one path; entries sharing a path merge.
        for (_, routes) in super::parts() {
            let _ = routes
                .into_iter()
                .fold(axum::Router::<crate::http::AppState>::new(), |r, route| {
                    r.route(route.path, route.handler)
                });
        }
    }
}
