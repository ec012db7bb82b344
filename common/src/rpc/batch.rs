//! Natural batching of calls to one peer: a lane ([`Lane`]) has at most one batch in
//! flight; calls made meanwhile queue, and when it comes back they go together as the next
//! batch, on one stream. Nothing waits for company: an idle lane sends a call at once, and a
//! busy one sends everything queued the moment it is free. The peer serves a batch's reads
//! in one pass and its writes as one commit group, and each call keeps its own deadline,
//! answer and error.
//!
//! A queued call is sent only if its caller still waits for it: the caller and the lane's
//! sender each move its status with one atomic step, so a call its caller gave up on (timed
//! out, or dropped) before it went out is never sent, and the caller then knows it was not.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use prost::Message;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use super::client::{Failure, Fate, Link, answer_of, too_slow};
use super::service::{Lane, Service};
use crate::error::{Error, ErrorCode};

/// Most calls in one batch. With documents of up to 1 MiB, a batch of reads answers at
/// most this many of them in one frame (see [`RESPONSE_FRAMES`]).
const MAX_ITEMS: usize = 32;
/// A batch's answer may be this many times the largest single frame.
const RESPONSE_FRAMES: usize = 4;
/// Calls a lane holds before further ones skip it and go alone on their own streams.
const MAX_QUEUED: usize = 1024;
/// How long after a peer refused a batch (an older build) its calls go alone before a
/// batch is tried again.
const RETRY_BATCHES_AFTER: Duration = Duration::from_secs(60);

/// A call waiting in a lane: queued, taken into a batch being prepared, sent, or given up by
/// its caller.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const SENT: u8 = 2;
const ABANDONED: u8 = 3;

/// A peer's lanes, one per [`Lane`], each made on first use for the service that uses it.
#[derive(Default)]
pub(super) struct Lanes {
    queues: [OnceLock<Arc<dyn Any + Send + Sync>>; 2],
    /// Until when (milliseconds on [`clock`]) calls skip the lanes: the peer refused a
    /// batch as a call it does not know (an older build during an upgrade).
    alone_until: AtomicU64,
    /// Set once the peer answered a batch: its calls need no copies kept for sending singly.
    confirmed: AtomicBool,
    /// Calls sent in batches of two or more, for tests.
    batched: AtomicU64,
}

/// Milliseconds since the first use, a clock for [`Lanes::alone_until`].
fn clock() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl Lanes {
    /// Calls sent to this peer in batches of two or more.
    pub(super) fn batched(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// The queue of `lane` for service `S`, unless calls to this peer go alone for now.
    fn queue<S: Service>(&self, lane: Lane) -> Option<Arc<Queue<S>>> {
        if clock() < self.alone_until.load(Ordering::Relaxed) {
            return None;
        }
        let slot = self.queues.get(lane.index())?;
        let any = slot
            .get_or_init(|| Arc::new(Queue::<S>::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        // A peer address serves one service, so a lane's queue is always of that service.
        any.downcast::<Queue<S>>().ok()
    }

    /// The peer refused a batch: send its calls alone for a while.
    fn refused(&self) {
        let until = clock() + RETRY_BATCHES_AFTER.as_millis() as u64;
        self.alone_until.store(until, Ordering::Relaxed);
        self.confirmed.store(false, Ordering::Relaxed);
    }
}

/// One lane's calls waiting for the batch in flight, and whether a sender is running.
struct Queue<S: Service> {
    state: Mutex<State<S>>,
}

impl<S: Service> Default for Queue<S> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                sending: false,
                waiting: VecDeque::new(),
            }),
        }
    }
}

struct State<S: Service> {
    sending: bool,
    waiting: VecDeque<Waiting<S>>,
}

/// A queued call and where its answer goes.
struct Waiting<S: Service> {
    /// The call's request; its time budget is set when it is sent.
    request: S::Request,
    deadline: Instant,
    /// [`QUEUED`], [`TAKEN`], [`SENT`] or [`ABANDONED`].
    status: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<S::Answer, Failure>>,
}

impl<S: Service> Queue<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The milliseconds from now to `deadline`, as a request's time budget.
fn budget_ms(deadline: Instant, now: Instant) -> u32 {
    let left = deadline.saturating_duration_since(now);
    left.as_millis().clamp(1, u32::MAX as u128) as u32
}

/// Gives a call up unless it was sent: what its caller may say about it.
fn give_up(status: &AtomicU8) -> Fate {
    for from in [QUEUED, TAKEN] {
        if status
            .compare_exchange(from, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Fate::NotSent;
        }
    }
    match status.load(Ordering::Acquire) {
        ABANDONED => Fate::NotSent,
        _ => Fate::Unknown,
    }
}

/// Gives its call up when a caller's future is dropped before the answer came.
struct GiveUpOnDrop(Arc<AtomicU8>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        give_up(&self.0);
    }
}

/// Sends `call` in `lane` to `link`'s peer and waits for its answer until `deadline`. A
/// call whose lane is unavailable (the peer refused batches, or too many calls wait) goes
/// alone on its own stream.
pub(super) async fn send<S: Service>(
    link: Link,
    lane: Lane,
    call: S::Call,
    deadline: Instant,
) -> Result<S::Answer, Failure> {
    let addr = link.addr().to_string();
    let Some(queue) = link.lanes().queue::<S>(lane) else {
        return link.send_alone::<S>(S::request(0, call), deadline).await;
    };
    let (reply, answer) = oneshot::channel();
    let status = Arc::new(AtomicU8::new(QUEUED));
    let waiting = Waiting {
        request: S::request(0, call),
        deadline,
        status: status.clone(),
        reply,
    };
    let queued = {
        let mut st = queue.lock();
        if st.waiting.len() >= MAX_QUEUED {
            Err(waiting)
        } else {
            st.waiting.push_back(waiting);
            Ok(!std::mem::replace(&mut st.sending, true))
        }
    };
    let start = match queued {
        Ok(start) => start,
        Err(waiting) => return link.send_alone::<S>(waiting.request, deadline).await,
    };

    let guard = GiveUpOnDrop(status);
    if start {
        tokio::spawn(drive(queue, link.clone()));
    }
    match timeout_at(deadline, answer).await {
        Ok(Ok(out)) => out,
        Ok(Err(_)) => {
            let fate = give_up(&guard.0);
            // The sender drops a call whose deadline passed before it went out, possibly
            // just before this caller's own timer fires: that is the deadline, not a peer
            // gone (which would mark a healthy node down for a client's short deadline).
            let error = if fate == Fate::NotSent && Instant::now() >= deadline {
                too_slow::<S>(&addr)
            } else {
                Error::unavailable(format!(
                    "the sender of calls to {} {addr} stopped before answering",
                    S::SERVER
                ))
            };
            Err(Failure { error, fate })
        }
        Err(_) => Err(Failure {
            error: too_slow::<S>(&addr),
            fate: give_up(&guard.0),
        }),
    }
}

/// Lets the next call start a sender if this one ends without emptying its queue (a
/// panic, or the runtime shutting down).
struct Sending<S: Service> {
    queue: Arc<Queue<S>>,
    done: bool,
}

impl<S: Service> Drop for Sending<S> {
    fn drop(&mut self) {
        if !self.done {
            self.queue.lock().sending = false;
        }
    }
}

/// A lane's sender: sends what is queued as one batch, waits for it, and again, until the
/// queue is empty.
async fn drive<S: Service>(queue: Arc<Queue<S>>, link: Link) {
    let mut sending = Sending {
        queue: queue.clone(),
        done: false,
    };
    loop {
        let batch = {
            let mut st = queue.lock();
            let batch = take(&mut st.waiting, link.max_frame() / 2);
            if batch.is_empty() {
                st.sending = false;
                sending.done = true;
                return;
            }
            batch
        };
        send_batch::<S>(&link, batch).await;
    }
}

/// A call taken into a batch.
struct Taken<S: Service> {
    request: S::Request,
    deadline: Instant,
    status: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<S::Answer, Failure>>,
}

/// Takes the oldest queued calls, up to [`MAX_ITEMS`] and `max_bytes` of requests (at
/// least one), dropping those whose callers gave up or whose deadline passed.
fn take<S: Service>(waiting: &mut VecDeque<Waiting<S>>, max_bytes: usize) -> Vec<Taken<S>> {
    let now = Instant::now();
    let (mut count, mut items, mut bytes) = (0, 0, 0);
    for w in waiting.iter() {
        let live = w.status.load(Ordering::Acquire) == QUEUED && w.deadline > now;
        if live {
            let len = w.request.encoded_len();
            if items == MAX_ITEMS || (items > 0 && bytes + len > max_bytes) {
                break;
            }
            items += 1;
            bytes += len;
        }
        count += 1;
    }
    waiting
        .drain(..count)
        .filter(|w| {
            // A call past its deadline is given up here; its caller reports it not sent.
            let to = if w.deadline > now { TAKEN } else { ABANDONED };
            w.status
                .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                && to == TAKEN
        })
        .map(|w| Taken {
            request: w.request,
            deadline: w.deadline,
            status: w.status,
            reply: w.reply,
        })
        .collect()
}

/// What went out: each sent call's reply, and copies of the requests where the peer may
/// still turn out not to know batches.
struct Sent<S: Service> {
    replies: Vec<oneshot::Sender<Result<S::Answer, Failure>>>,
    copies: Option<Vec<(S::Request, Instant)>>,
}

/// Sends `batch` (a lone call as a plain request) and hands every call its answer.
async fn send_batch<S: Service>(link: &Link, mut batch: Vec<Taken<S>>) {
    let addr = link.addr().to_string();
    let Some(deadline) = batch.iter().map(|t| t.deadline).max() else {
        return;
    };
    let keep_copies = !link.lanes().confirmed.load(Ordering::Relaxed);
    let mut sent = Sent::<S> {
        replies: Vec::with_capacity(batch.len()),
        copies: keep_copies.then(Vec::new),
    };
    // Built once the stream is about to open: calls given up meanwhile are left out, and
    // each one's budget is what its caller has left now.
    let make = |ms: u32| {
        let now = Instant::now();
        let mut requests = Vec::with_capacity(batch.len());
        for mut t in batch.drain(..) {
            if t.status
                .compare_exchange(TAKEN, SENT, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            S::set_timeout(&mut t.request, budget_ms(t.deadline, now));
            if let Some(copies) = &mut sent.copies {
                copies.push((t.request.clone(), t.deadline));
            }
            requests.push(t.request);
            sent.replies.push(t.reply);
        }
        match requests.len() {
            1 => requests.pop().unwrap_or_default(),
            _ => S::batch(ms, requests).unwrap_or_default(),
        }
    };
    // A batch of reads may bring back several large documents in one frame.
    let out = link
        .answers_up_to(response_cap(link.max_frame()))
        .round_trip::<S>(deadline, make, || {})
        .await;
    // Calls still here were never sent (no permit or connection in time).
    if let Err(failure) = &out {
        for t in batch {
            let _ = t.reply.send(Err(failure.clone()));
        }
    }
    let Sent { replies, copies } = sent;
    let resp = match out {
        Ok(resp) => resp,
        Err(failure) => {
            fail_all::<S>(replies, &failure);
            return;
        }
    };
    if replies.len() == 1 {
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(answer_of::<S>(resp, &addr));
        }
        return;
    }
    match S::unbatch(resp) {
        Ok(items) if items.len() == replies.len() => {
            link.lanes().confirmed.store(true, Ordering::Relaxed);
            link.lanes()
                .batched
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            metrics::counter!("aerolith_rpc_batched_calls_total").increment(items.len() as u64);
            for (reply, item) in replies.into_iter().zip(items) {
                let _ = reply.send(answer_of::<S>(item, &addr));
            }
        }
        Ok(items) => {
            let why = format!(
                "answered {} of a batch of {} calls",
                items.len(),
                replies.len()
            );
            fail_all::<S>(replies, &garbled::<S>(&addr, &why));
        }
        Err(whole) => match answer_of::<S>(whole, &addr) {
            // An older peer answers a batch as a call it does not know: it did nothing.
            Err(f) if f.error.code == ErrorCode::InvalidArgument => {
                link.lanes().refused();
                resend_alone::<S>(link, replies, copies).await;
            }
            Err(f) => {
                fail_all::<S>(replies, &f);
            }
            Ok(_) => {
                let why = "answered a batch with a single answer";
                fail_all::<S>(replies, &garbled::<S>(&addr, why));
            }
        },
    }
}

/// The failure of calls whose batch came back in a shape that does not match it (a bug on
/// one side): what the peer did with them is unknown.
fn garbled<S: Service>(addr: &str, why: &str) -> Failure {
    Failure {
        error: Error::internal(format!("{} {addr} {why}", S::SERVER)),
        fate: Fate::Unknown,
    }
}

/// Gives every caller of `replies` the same failure.
fn fail_all<S: Service>(
    replies: Vec<oneshot::Sender<Result<S::Answer, Failure>>>,
    failure: &Failure,
) {
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}

/// Sends the calls of a batch the peer refused one by one; without copies (the peer had
/// taken batches before), tells each caller nothing was done, so it may try again.
async fn resend_alone<S: Service>(
    link: &Link,
    replies: Vec<oneshot::Sender<Result<S::Answer, Failure>>>,
    copies: Option<Vec<(S::Request, Instant)>>,
) {
    let addr = link.addr().to_string();
    let Some(copies) = copies else {
        let failure = Failure {
            error: Error::unavailable(format!(
                "{} {addr} refused a batch of calls; nothing was done",
                S::SERVER
            )),
            fate: Fate::NotSent,
        };
        fail_all::<S>(replies, &failure);
        return;
    };
    for (reply, (request, deadline)) in replies.into_iter().zip(copies) {
        let _ = reply.send(link.send_alone::<S>(request, deadline).await);
    }
}

/// The largest answer a batch may bring back, given the largest single frame.
pub(super) fn response_cap(max_frame: usize) -> usize {
    max_frame.saturating_mul(RESPONSE_FRAMES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::service::Node;

    fn waiting(deadline: Instant, status: u8) -> Waiting<Node> {
        let (reply, _) = oneshot::channel();
        Waiting {
            request: aerolith_proto::internal::v1::Request::default(),
            deadline,
            status: Arc::new(AtomicU8::new(status)),
            reply,
        }
    }

    #[test]
    fn a_caller_may_say_not_sent_only_of_a_call_that_never_went_out() {
        for (from, fate, after) in [
            (QUEUED, Fate::NotSent, ABANDONED),
            (TAKEN, Fate::NotSent, ABANDONED),
            (SENT, Fate::Unknown, SENT),
            (ABANDONED, Fate::NotSent, ABANDONED),
        ] {
            let status = AtomicU8::new(from);
            assert_eq!(give_up(&status), fate, "from {from}");
            assert_eq!(status.load(Ordering::Acquire), after, "from {from}");
        }
        // Once given up, the sender cannot take or send it.
        let status = AtomicU8::new(QUEUED);
        give_up(&status);
        assert!(
            status
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_batch_takes_live_calls_only_and_at_most_its_share() {
        let later = Instant::now() + Duration::from_secs(10);
        let past = Instant::now() - Duration::from_millis(1);
        let mut queue: VecDeque<Waiting<Node>> = VecDeque::new();
        queue.push_back(waiting(later, ABANDONED));
        queue.push_back(waiting(past, QUEUED));
        let expired = queue[1].status.clone();
        for _ in 0..MAX_ITEMS + 5 {
            queue.push_back(waiting(later, QUEUED));
        }
        let taken = take(&mut queue, usize::MAX);
        assert_eq!(taken.len(), MAX_ITEMS);
        assert!(
            taken
                .iter()
                .all(|t| t.status.load(Ordering::Acquire) == TAKEN)
        );
        // The expired call is given up, so its caller reports it not sent.
        assert_eq!(expired.load(Ordering::Acquire), ABANDONED);
        assert_eq!(queue.len(), 5);
    }
}
