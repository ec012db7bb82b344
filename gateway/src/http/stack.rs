//! The layers each part of the HTTP port runs its routes through. Every middleware takes
//! what it needs from its own state (the protocol label, the role the route needs), so none
//! looks at paths.

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::MethodRouter;

use super::auth::{Gate, authenticate};
use super::route::{Access, Route};
use super::{AppState, context, in_flight, metrics};

/// A part of the HTTP port, with its own layer stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The REST API (API.md "REST").
    Rest,
    /// The WebSocket API's upgrade.
    WebSocket,
    /// GraphQL: the endpoint, GraphiQL and the subscription upgrade.
    Graphql,
    /// Liveness, readiness and metrics: no token, no place in flight (probes must answer
    /// under load).
    Probes,
}

impl Part {
    /// The `protocol` label of the part's request metrics.
    fn protocol(self) -> &'static str {
        match self {
            Part::Rest | Part::Probes => "rest",
            Part::WebSocket => "websocket",
            Part::Graphql => "graphql",
        }
    }

    /// Whether the deadline middleware sets the request's context: GraphQL reads its own
    /// and answers deadline errors in its shape.
    fn deadline(self) -> bool {
        self != Part::Graphql
    }

    /// Whether a request takes one of the gateway's places in flight.
    fn in_flight(self) -> bool {
        self != Part::Probes
    }
}

/// `route`'s handler inside `part`'s layers, outermost first: metrics, authentication (so a
/// refused request takes no place), the deadline, a place in flight (waited for within
/// the deadline).
pub fn layered(part: Part, route: Route, state: &AppState) -> MethodRouter<AppState> {
    let mut handler = route.handler;
    if part.in_flight() {
        handler = handler.layer(from_fn_with_state(
            state.in_flight.clone(),
            in_flight::limit,
        ));
    }
    if part.deadline() {
        handler = handler.layer(from_fn(context::deadline));
    }
    if let Access::Role(role) = route.access {
        let gate = Gate {
            admission: state.admission.clone(),
            role,
            token_in_query: route.token_in_query,
            token_later: route.token_later,
            refuse: route.refuse,
        };
        handler = handler.layer(from_fn_with_state(gate, authenticate));
    }
    let labels = metrics::RouteMetrics::new(part.protocol(), route.method.as_str(), route.path);
    handler.layer(from_fn_with_state(labels, metrics::track))
}
