//! Session consistency (API.md): a token holds, per shard and DC, the newest point of that
//! DC's change log the session has written or read. A read that presents it is served only
//! by a node that has applied those points; every answer carries the token merged with what
//! the request wrote or read.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use aerolith_common::{Error, Result, pb};

use super::{Ctx, Ops};

/// The token format this code writes and reads.
const VERSION: u32 = 1;
/// Prefix that makes session tokens recognisable next to feed tokens (`t1.`).
const PREFIX: &str = "s1.";
/// Longest token accepted: one mark per shard and DC fits with room to spare.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The session state of one request: the marks it arrived with, merged with those its reads
/// and writes produce. Shared by the adapter (which writes the answer's header) and the
/// operations (which add to it), hence the lock.
#[derive(Debug, Default)]
pub struct Session {
    marks: Mutex<BTreeMap<(u32, String), (u64, u64)>>,
}

impl Session {
    /// A session from a client's token (`None` or empty: a new session). A token that does
    /// not decode is `invalid_argument`.
    pub fn parse(token: Option<&str>) -> Result<Session> {
        let session = Session::default();
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(session);
        };
        let bad = || Error::invalid("malformed session token");
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad());
        }
        let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        let decoded = pb::SessionToken::decode(bytes.as_slice()).map_err(|_| bad())?;
        if decoded.version != VERSION {
            return Err(bad());
        }
        for m in &decoded.marks {
            aerolith_common::name::validate_dc(&m.dc).map_err(|_| bad())?;
            session.observe(m);
        }
        Ok(session)
    }

    /// Merges a mark in: per shard and DC the later log point wins.
    pub fn observe(&self, mark: &pb::SessionMark) {
        let mut marks = self.lock();
        let slot = marks
            .entry((mark.shard, mark.dc.clone()))
            .or_insert((mark.epoch, mark.seq));
        *slot = (*slot).max((mark.epoch, mark.seq));
    }

    /// Merges every mark of `marks` in.
    pub fn observe_all<'a>(&self, marks: impl IntoIterator<Item = &'a pb::SessionMark>) {
        for m in marks {
            self.observe(m);
        }
    }

    /// The marks of the shards `wanted` selects: what a node must cover before it serves a
    /// read of them.
    pub fn marks(&self, wanted: impl Fn(u16) -> bool) -> Vec<pb::SessionMark> {
        self.lock()
            .iter()
            .filter(|((shard, _), _)| u16::try_from(*shard).is_ok_and(&wanted))
            .map(|((shard, dc), (epoch, seq))| pb::SessionMark {
                shard: *shard,
                dc: dc.clone(),
                epoch: *epoch,
                seq: *seq,
            })
            .collect()
    }

    /// The token to hand back to the client.
    pub fn token(&self) -> String {
        let token = pb::SessionToken {
            version: VERSION,
            marks: self.marks(|_| true),
        };
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(token.encode_to_vec()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u32, String), (u64, u64)>> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many DCs must hold a write before it is acknowledged (API.md "Write concern").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriteConcern {
    /// Durable on the storage node that took it.
    #[default]
    Local,
    /// Applied by every DC not marked `down`.
    All,
}

impl WriteConcern {
    /// Parses `local` / `all` (absent: `local`); anything else is `invalid_argument`.
    pub fn parse(raw: Option<&str>) -> Result<WriteConcern> {
        match raw.map(str::trim) {
            None | Some("") | Some("local") => Ok(WriteConcern::Local),
            Some("all") => Ok(WriteConcern::All),
            Some(other) => Err(Error::invalid(format!(
                "write concern must be \"local\" or \"all\", not {other:?}"
            ))),
        }
    }
}

impl Ops {
    /// After a write: adds its mark to the session and, under write concern `all`, waits
    /// until every DC not marked down has applied it.
    pub(crate) async fn settle(&self, ctx: &Ctx, mark: Option<&pb::SessionMark>) -> Result<()> {
        match mark {
            Some(m) => self.settle_all(ctx, std::slice::from_ref(m)).await,
            // A node that does not report positions (an older version) cannot confirm.
            None if ctx.write_concern == WriteConcern::All => Err(Error::deadline(
                "write concern all cannot be confirmed: the storage node did not report the \
                 write's log position; the write stands",
            )),
            None => Ok(()),
        }
    }

    /// [`Ops::settle`] for several writes.
    pub(crate) async fn settle_all(&self, ctx: &Ctx, marks: &[pb::SessionMark]) -> Result<()> {
        ctx.session.observe_all(marks);
        if ctx.write_concern == WriteConcern::Local || marks.is_empty() {
            return Ok(());
        }
        // Covering a later point of a DC's log covers the earlier ones of the same shard.
        let latest = Session::default();
        latest.observe_all(marks);
        self.router
            .confirm(&latest.marks(|_| true), ctx.deadline)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(shard: u32, dc: &str, epoch: u64, seq: u64) -> pb::SessionMark {
        pb::SessionMark {
            shard,
            dc: dc.into(),
            epoch,
            seq,
        }
    }

    #[test]
    fn tokens_round_trip_and_merge_forward() {
        let s = Session::parse(None).unwrap();
        s.observe(&mark(3, "dc1", 1, 10));
        s.observe(&mark(3, "dc1", 1, 7));
        s.observe(&mark(3, "dc2", 1, 2));
        s.observe(&mark(5, "dc1", 2, 1));
        let back = Session::parse(Some(&s.token())).unwrap();
        assert_eq!(
            back.marks(|sh| sh == 3),
            vec![mark(3, "dc1", 1, 10), mark(3, "dc2", 1, 2)]
        );
        assert_eq!(back.marks(|_| true).len(), 3);
        assert_eq!(back.token(), s.token());
    }

    #[test]
    fn bad_tokens_are_invalid_argument() {
        for t in ["nope", "s1.!!!", "t1.AAAA", "s1.AAAA"] {
            let e = Session::parse(Some(t)).unwrap_err();
            assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument, "{t}");
        }
        assert!(Session::parse(Some("")).unwrap().marks(|_| true).is_empty());
    }

    #[test]
    fn write_concerns() {
        assert_eq!(WriteConcern::parse(None).unwrap(), WriteConcern::Local);
        assert_eq!(WriteConcern::parse(Some("all")).unwrap(), WriteConcern::All);
        assert!(WriteConcern::parse(Some("majority")).is_err());
    }
}
