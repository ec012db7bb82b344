//! The two services of the internal RPC and their envelopes: a storage node's ([`Node`]) and
//! a replicator's as its peers call it ([`Replicator`]). Each names its request and response
//! messages and how a call's body goes into them and an answer's body comes out, so the
//! client and the server loop are written once for both.

use aerolith_proto::internal::v1 as pb;
use prost::Message;

use super::role::PeerRole;
use crate::error::{Error, ErrorCode};

/// One service of the internal RPC: its envelope messages and their bodies.
pub trait Service: Send + Sync + 'static {
    /// The request envelope on the wire.
    type Request: Message + Default + Clone + Send + 'static;
    /// The response envelope on the wire.
    type Response: Message + Default + Send + 'static;
    /// What a request carries: one of the service's calls.
    type Call: Send + 'static;
    /// What a successful response carries.
    type Answer: Send + 'static;
    /// Who serves it, for messages ("storage node", "replicator").
    const SERVER: &'static str;
    /// The role a server of this service presents: a client refuses a peer with another.
    const SERVER_ROLE: PeerRole;

    /// The request envelope of `call`, telling the server it has `timeout_ms` to answer.
    fn request(timeout_ms: u32, call: Self::Call) -> Self::Request;
    /// Sets a request's time budget (a queued call's, counted again when it is sent).
    fn set_timeout(req: &mut Self::Request, timeout_ms: u32);
    /// A request's time budget and call (`None` when empty or of a kind this build does
    /// not know).
    fn open(req: Self::Request) -> (u32, Option<Self::Call>);
    /// The response envelope of an answer or an error.
    fn response(out: Result<Self::Answer, Error>) -> Self::Response;
    /// A response's answer or error; `None` when it carries neither.
    fn answer(resp: Self::Response) -> Option<Result<Self::Answer, Error>>;
    /// The call's name, for metrics and messages.
    fn call_name(call: &Self::Call) -> &'static str;
    /// The roles that may make `call` (as the `calls!` list declares them).
    fn callers(call: &Self::Call) -> &'static [PeerRole];

    /// Whether a peer of `role` may make `call`; the server refuses it otherwise.
    fn permits(role: PeerRole, call: &Self::Call) -> bool {
        Self::callers(call).contains(&role)
    }

    /// The lane in which `call` may wait to be sent with others (see [`Lane`]); `None`
    /// sends it on a stream of its own at once.
    fn lane(_call: &Self::Call) -> Option<Lane> {
        None
    }

    /// One request carrying `items`, each with its own time budget; `None` when the
    /// service has no batches (then no call has a lane).
    fn batch(_timeout_ms: u32, _items: Vec<Self::Request>) -> Option<Self::Request> {
        None
    }

    /// A batch's responses, one per item, or the response back when it is not a batch's
    /// (an error answered for the whole batch).
    fn unbatch(resp: Self::Response) -> Result<Vec<Self::Response>, Self::Response> {
        Err(resp)
    }
}

/// A queue of calls to one peer that travel together: while one batch is in flight, the
/// calls made meanwhile wait and then go as the next batch, on one stream. Reads and writes
/// have a lane each, so a read never waits behind a write's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Point reads without session marks.
    Reads,
    /// Document writes without session marks.
    Writes,
}

impl Lane {
    /// The lane's index in a peer's lanes.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A call of service `S`: a request message, the answer message it gets, and its name.
pub trait Call<S: Service>: Clone + Send + 'static {
    /// The answer of a successful call.
    type Answer: Send + 'static;
    /// The call's name, as in the wire's `oneof` (for metrics and messages).
    const NAME: &'static str;
    /// The call as the request body.
    fn into_call(self) -> S::Call;
    /// This call's answer out of a response body; `None` when the body is another kind.
    fn from_answer(answer: S::Answer) -> Option<Self::Answer>;
}

/// The storage node's service (gateways and replicators call it).
pub struct Node;

/// The replicator's service as another DC's replicator calls it.
pub struct Replicator;

fn rpc_error(e: &Error) -> pb::RpcError {
    pb::RpcError {
        code: e.code.as_str().to_string(),
        message: e.message.clone(),
    }
}

fn from_rpc_error(e: pb::RpcError) -> Error {
    Error::new(ErrorCode::from_wire(&e.code), e.message)
}

/// Writes a [`Service`] implementation for an envelope pair whose bodies are
/// `$req::Body` / `$resp::Body`, with the `Error` variant carrying failures.
macro_rules! envelope {
    ($svc:ty, $server:literal, $server_role:ident, $req:ident, $req_mod:ident, $resp:ident, $resp_mod:ident $(, { $($extra:item)* })?) => {
        impl Service for $svc {
            type Request = pb::$req;
            type Response = pb::$resp;
            type Call = pb::$req_mod::Body;
            type Answer = pb::$resp_mod::Body;
            const SERVER: &'static str = $server;
            const SERVER_ROLE: PeerRole = PeerRole::$server_role;

            fn request(timeout_ms: u32, call: Self::Call) -> Self::Request {
                pb::$req {
                    timeout_ms,
                    body: Some(call),
                }
            }

            fn set_timeout(req: &mut Self::Request, timeout_ms: u32) {
                req.timeout_ms = timeout_ms;
            }

            fn open(req: Self::Request) -> (u32, Option<Self::Call>) {
                (req.timeout_ms, req.body)
            }

            fn response(out: Result<Self::Answer, Error>) -> Self::Response {
                let body = match out {
                    Ok(answer) => answer,
                    Err(e) => pb::$resp_mod::Body::Error(rpc_error(&e)),
                };
                pb::$resp { body: Some(body) }
            }

            fn answer(resp: Self::Response) -> Option<Result<Self::Answer, Error>> {
                match resp.body? {
                    pb::$resp_mod::Body::Error(e) => Some(Err(from_rpc_error(e))),
                    body => Some(Ok(body)),
                }
            }

            fn call_name(call: &Self::Call) -> &'static str {
                call_name_of(call)
            }

            fn callers(call: &Self::Call) -> &'static [PeerRole] {
                call.callers()
            }

            $($($extra)*)?
        }
    };
}

envelope!(
    Node,
    "storage node",
    StorageNode,
    Request,
    request,
    Response,
    response,
    {
        fn lane(call: &Self::Call) -> Option<Lane> {
            use pb::request::Body;
            // A call carrying session marks may wait at the node for replication: it would
            // hold up every call queued behind it.
            match call {
                Body::Get(r) if r.session.is_empty() => Some(Lane::Reads),
                Body::Put(r) if r.session.is_empty() => Some(Lane::Writes),
                Body::Patch(r) if r.session.is_empty() => Some(Lane::Writes),
                Body::Delete(r) if r.session.is_empty() => Some(Lane::Writes),
                _ => None,
            }
        }

        fn permits(role: PeerRole, call: &Self::Call) -> bool {
            // A batch carries calls: each must be one the caller may make on its own.
            Self::callers(call).contains(&role)
                && match call {
                    pb::request::Body::Batch(b) => b
                        .items
                        .iter()
                        .all(|i| i.body.as_ref().is_none_or(|c| Self::permits(role, c))),
                    _ => true,
                }
        }

        fn batch(timeout_ms: u32, items: Vec<Self::Request>) -> Option<Self::Request> {
            Some(Self::request(
                timeout_ms,
                pb::request::Body::Batch(pb::RequestBatch { items }),
            ))
        }

        fn unbatch(resp: Self::Response) -> Result<Vec<Self::Response>, Self::Response> {
            match resp.body {
                Some(pb::response::Body::Batch(b)) => Ok(b.items),
                body => Err(pb::Response { body }),
            }
        }
    }
);
envelope!(
    Replicator,
    "replicator",
    Replicator,
    ReplicatorRequest,
    replicator_request,
    ReplicatorResponse,
    replicator_response
);

/// The name of a call body, whichever service's, and who may make it.
trait CallName {
    fn call_name(&self) -> &'static str;
    fn callers(&self) -> &'static [PeerRole];
}

fn call_name_of<C: CallName>(call: &C) -> &'static str {
    call.call_name()
}

/// The calls of each service, one line each: `name(RequestVariant: RequestMessage) ->
/// AnswerVariant: AnswerMessage by [Roles]`. Everything typed about a call (its [`Call`]
/// impl, its name, who may make it, its method on the typed client) is written from this
/// list.
macro_rules! calls {
    ($(
        $svc:ident ($req_mod:ident, $resp_mod:ident) {
            $( $name:ident ($variant:ident : $msg:ident) -> $answer:ident : $answer_msg:ident by [$($role:ident),+]; )*
        }
    )*) => {
        $(
            $(
                impl Call<$svc> for pb::$msg {
                    type Answer = pb::$answer_msg;
                    const NAME: &'static str = stringify!($name);

                    fn into_call(self) -> pb::$req_mod::Body {
                        pb::$req_mod::Body::$variant(self)
                    }

                    fn from_answer(answer: pb::$resp_mod::Body) -> Option<pb::$answer_msg> {
                        match answer {
                            pb::$resp_mod::Body::$answer(a) => Some(a),
                            _ => None,
                        }
                    }
                }
            )*

            impl CallName for pb::$req_mod::Body {
                fn call_name(&self) -> &'static str {
                    match self {
                        $( pb::$req_mod::Body::$variant(_) => stringify!($name), )*
                    }
                }

                fn callers(&self) -> &'static [PeerRole] {
                    match self {
                        $( pb::$req_mod::Body::$variant(_) => &[$(PeerRole::$role),+], )*
                    }
                }
            }

            impl super::client::Typed<'_, $svc> {
                $(
                    #[doc = concat!("The `", stringify!($name), "` call (see [`super::client::Typed::call`]).")]
                    pub async fn $name(
                        &self,
                        addr: &str,
                        req: pb::$msg,
                        timeout: std::time::Duration,
                    ) -> crate::error::Result<pb::$answer_msg> {
                        self.call(addr, req, timeout).await
                    }
                )*
            }
        )*
    };
}

calls! {
    Node(request, response) {
        get(Get: GetRequest) -> Doc: DocResponse by [Gateway, Replicator];
        put(Put: PutRequest) -> Doc: DocResponse by [Gateway, Replicator];
        patch(Patch: PatchRequest) -> Doc: DocResponse by [Gateway, Replicator];
        delete(Delete: DeleteRequest) -> Doc: DocResponse by [Gateway, Replicator];
        list(List: ListRequest) -> List: ListResponse by [Gateway, Replicator];
        put_collection(PutCollection: PutCollectionRequest) -> PutCollection: PutCollectionResponse by [Gateway, Replicator];
        get_collection(GetCollection: GetCollectionRequest) -> Collection: CollectionMeta by [Gateway, Replicator];
        list_collections(ListCollections: ListCollectionsRequest) -> Collections: ListCollectionsResponse by [Gateway, Replicator];
        delete_collection(DeleteCollection: DeleteCollectionRequest) -> Collection: CollectionMeta by [Gateway, Replicator];
        put_index(PutIndex: PutIndexRequest) -> PutCollection: PutCollectionResponse by [Gateway, Replicator];
        drop_index(DropIndex: DropIndexRequest) -> Collection: CollectionMeta by [Gateway, Replicator];
        index_states(IndexStates: IndexStatesRequest) -> IndexStates: IndexStatesResponse by [Gateway, Replicator];
        ping(Ping: PingRequest) -> Pong: PingResponse by [Gateway, Replicator, StorageNode];
        bulk(Bulk: BulkRequest) -> Bulk: BulkResponse by [Gateway, Replicator];
        query(Query: QueryRequest) -> Query: QueryResponse by [Gateway, Replicator];
        read_changes(ReadChanges: ReadChangesRequest) -> Changes: ReadChangesResponse by [Gateway, Replicator];
        change_heads(ChangeHeads: ChangeHeadsRequest) -> Heads: ChangeHeadsResponse by [Gateway, Replicator];
        apply(Apply: ApplyRequest) -> Apply: ApplyResponse by [Replicator];
        watermarks(Watermarks: WatermarksRequest) -> Watermarks: WatermarksResponse by [Gateway, Replicator];
        apply_collection(ApplyCollection: CollectionMeta) -> Collection: CollectionMeta by [Replicator];
        digest(Digest: DigestRequest) -> Digests: DigestResponse by [Replicator];
        apply_batch(ApplyBatch: ApplyBatchRequest) -> AppliedBatch: ApplyBatchResponse by [Replicator];
        await_marks(AwaitMarks: AwaitRequest) -> Empty: Empty by [Gateway, Replicator];
        dc_states(DcStates: DcStatesRequest) -> Empty: Empty by [Replicator];
        range(Range: RangeRequest) -> Range: RangeResponse by [Replicator];
        seed_status(SeedStatus: SeedStatusRequest) -> SeedStatus: SeedStatusResponse by [Replicator];
        seed_read(SeedRead: SeedReadRequest) -> SeedRead: SeedReadResponse by [Replicator];
        seed_write(SeedWrite: SeedWriteRequest) -> Empty: Empty by [Replicator];
        seed_finish(SeedFinish: SeedFinishRequest) -> Empty: Empty by [Replicator];
        peer_acks(PeerAcks: PeerAcksRequest) -> PeerAcks: PeerAcksResponse by [Replicator];
        backup(Backup: BackupRequest) -> Backup: BackupResponse by [Replicator];
        seed_decide(SeedDecide: SeedDecideRequest) -> Empty: Empty by [Replicator];
        batch(Batch: RequestBatch) -> Batch: ResponseBatch by [Gateway, Replicator];
        set_shard_map(SetShardMap: SetShardMapRequest) -> ShardMap: ShardMap by [Replicator];
        get_shard_map(GetShardMap: GetShardMapRequest) -> ShardMap: ShardMap by [Gateway, Replicator];
        shard_export(ShardExport: ShardExportRequest) -> ShardExport: ShardExportResponse by [Replicator];
        shard_import(ShardImport: ShardImportRequest) -> Empty: Empty by [Replicator];
        shard_drop(ShardDrop: ShardDropRequest) -> Empty: Empty by [Replicator];
    }
    Replicator(replicator_request, replicator_response) {
        ping(Ping: PingRequest) -> Pong: PingResponse by [Gateway, Replicator, StorageNode];
        watermarks(Watermarks: WatermarksRequest) -> Watermarks: WatermarksResponse by [Replicator];
        ship(Ship: ShipRequest) -> Shipped: ShipResponse by [Replicator];
        dc_states(DcStates: DcStatesRequest) -> Empty: Empty by [Replicator];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicator_envelope_reads_what_the_shared_one_wrote() {
        // Both services shared `Request`/`Response` before; the replicator's envelope keeps
        // their tags, so a peer of either build understands the other.
        let ship = pb::ShipRequest {
            from_dc: "dc1".into(),
            ..Default::default()
        };
        let shared = pb::Request {
            timeout_ms: 7,
            body: Some(pb::request::Body::Ping(pb::PingRequest {})),
        };
        let read = pb::ReplicatorRequest::decode(shared.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read.timeout_ms, 7);
        assert!(matches!(
            read.body,
            Some(pb::replicator_request::Body::Ping(_))
        ));
        let sent = Replicator::request(9, ship.clone().into_call());
        let bytes = sent.encode_to_vec();
        let back = pb::ReplicatorRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.body, Some(pb::replicator_request::Body::Ship(ship)));
        let answer = pb::ReplicatorResponse {
            body: Some(pb::replicator_response::Body::Watermarks(
                pb::WatermarksResponse::default(),
            )),
        };
        let as_node = pb::Response::decode(answer.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(
            as_node.body,
            Some(pb::response::Body::Watermarks(_))
        ));
    }

    #[test]
    fn answers_of_another_kind_are_refused_and_errors_come_back_as_errors() {
        let doc = pb::response::Body::Doc(pb::DocResponse::default());
        assert!(<pb::GetRequest as Call<Node>>::from_answer(doc.clone()).is_some());
        assert!(<pb::ListRequest as Call<Node>>::from_answer(doc).is_none());
        let failed = Node::response(Err(Error::not_found("gone")));
        let Some(Err(e)) = Node::answer(failed) else {
            panic!("an error response must read back as the error");
        };
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.message, "gone");
        assert!(Node::answer(pb::Response { body: None }).is_none());
        assert_eq!(
            Node::call_name(&pb::SeedDecideRequest::default().into_call()),
            "seed_decide"
        );
        assert_eq!(<pb::ShipRequest as Call<Replicator>>::NAME, "ship");
    }

    #[test]
    fn a_gateway_may_serve_clients_but_not_replicate_seed_move_or_back_up() {
        use pb::request::Body as B;
        let gateway_may = |b: B| Node::permits(PeerRole::Gateway, &b);
        assert!(gateway_may(B::Get(Default::default())));
        assert!(gateway_may(B::Put(Default::default())));
        assert!(gateway_may(B::Query(Default::default())));
        assert!(gateway_may(B::ReadChanges(Default::default())));
        for forbidden in [
            B::Apply(Default::default()),
            B::ApplyBatch(Default::default()),
            B::ApplyCollection(Default::default()),
            B::PeerAcks(Default::default()),
            B::SeedWrite(Default::default()),
            B::SeedDecide(Default::default()),
            B::Backup(Default::default()),
            B::SetShardMap(Default::default()),
            B::ShardImport(Default::default()),
            B::ShardDrop(Default::default()),
            B::DcStates(Default::default()),
        ] {
            assert!(
                !gateway_may(forbidden.clone()),
                "{}",
                Node::call_name(&forbidden)
            );
            assert!(Node::permits(PeerRole::Replicator, &forbidden));
            assert!(!Node::permits(PeerRole::StorageNode, &forbidden));
        }
        // A batch is judged by every call it carries.
        let item = |b: B| pb::Request {
            timeout_ms: 1,
            body: Some(b),
        };
        let fine = B::Batch(pb::RequestBatch {
            items: vec![item(B::Get(Default::default()))],
        });
        assert!(gateway_may(fine));
        let smuggled = B::Batch(pb::RequestBatch {
            items: vec![
                item(B::Get(Default::default())),
                item(B::Apply(Default::default())),
            ],
        });
        assert!(!gateway_may(smuggled));
        // Peers' replicators alone ship; anyone certified may ping.
        let ship = pb::replicator_request::Body::Ship(Default::default());
        assert!(!Replicator::permits(PeerRole::Gateway, &ship));
        assert!(Replicator::permits(PeerRole::Replicator, &ship));
        let ping = pb::replicator_request::Body::Ping(Default::default());
        assert!(PeerRole::ALL.iter().all(|r| Replicator::permits(*r, &ping)));
    }
}
