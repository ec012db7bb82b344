//! The public API over each protocol: REST, GraphQL, WebSocket, gRPC, their parity, queries, change feeds, sessions and hostile input.

mod bad_input;
mod changes;
mod graphql;
mod grpc;
mod indexed_queries;
mod openapi;
mod parity;
mod query;
mod rest_collections;
mod rest_documents;
mod rest_errors;
mod rest_indexes;
mod session;
mod websocket;
mod ws_slow_consumer;
