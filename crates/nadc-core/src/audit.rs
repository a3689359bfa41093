//! The audit trail: who did what to which data, under which purpose and
//! case, with what outcome, in an append-only log whose entries are
//! hash-chained so that deleting or editing one is detectable.
//!
//! Entry `n` commits to entry `n - 1`:
//! `hash(n) = SHA-256("nadc-audit-v1" · n · hash(n - 1) · body(n))`, where
//! `body` is the entry's canonical JSON (fields in declaration order) and
//! `hash(0)` is 32 zero bytes. Verifying walks the log from the start and
//! names the first entry whose stored hash, sequence number or link to its
//! predecessor does not hold.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{ForceId, Role};
use crate::time::Timestamp;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The hash before the first entry.
pub const GENESIS: Digest = [0; 32];

/// How an audited action ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by policy (the reason given to the user).
    Refused(String),
    /// Failed (e.g. the store was unavailable).
    Failed(String),
}

impl Outcome {
    /// A short name: `ok`, `refused` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// One audited action.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the node recorded it.
    pub at: Timestamp,
    /// The node that recorded it.
    pub node: String,
    /// The user (or BOF, or `node` for the node's own jobs).
    pub user: String,
    /// The user's agency (force).
    pub force: Option<ForceId>,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// What was done, e.g. `search.vrm`, `hotlist.add`, `alert.verify`,
    /// `authorisation.grant`, `retention.delete`.
    pub action: String,
    /// The purpose code given.
    pub purpose: String,
    /// The case or crime reference given.
    pub case_ref: String,
    /// The authorisation relied on for older data, if any.
    pub authorisation: String,
    /// The request itself (JSON), so the search can be reconstructed.
    pub query: String,
    /// Owning forces of the data returned, with row counts.
    pub returned: Vec<(ForceId, u64)>,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Debug for AuditEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query can name VRMs: not in Debug output.
        f.debug_struct("AuditEntry")
            .field("at", &self.at)
            .field("user", &self.user)
            .field("force", &self.force)
            .field("action", &self.action)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl AuditEntry {
    /// The canonical bytes hashed for this entry.
    pub fn body(&self) -> Vec<u8> {
        // Serialising a plain struct to JSON cannot fail; fall back to the
        // Debug text rather than panic.
        serde_json::to_vec(self).unwrap_or_else(|_| format!("{self:?}").into_bytes())
    }

    /// The hash of this entry stored at `seq` after an entry hashed `prev`.
    pub fn chain_hash(&self, seq: u64, prev: &Digest) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"nadc-audit-v1");
        ctx.update(&seq.to_be_bytes());
        ctx.update(prev);
        ctx.update(&self.body());
        let d = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

/// An entry as stored: its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedEntry {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// The previous entry's hash.
    pub prev: Digest,
    /// This entry's hash.
    pub hash: Digest,
    /// The entry.
    pub entry: AuditEntry,
}

/// The first place a chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The sequence number where it breaks (the entry expected there).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// Checks entries in order, as a verifier walks the log.
#[derive(Clone, Debug)]
pub struct ChainCheck {
    next_seq: u64,
    prev: Digest,
    /// Entries checked so far.
    pub checked: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS,
            checked: 0,
        }
    }
}

/// Lower-case hex of the SHA-256 of `bytes` (how an audit entry names a
/// request field too long to keep whole).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of a digest.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl ChainCheck {
    /// Checks the next stored entry.
    pub fn check(&mut self, e: &ChainedEntry) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink {
            seq: self.next_seq,
            reason,
        };
        if e.seq != self.next_seq {
            return Err(broken(format!(
                "expected entry {} but found entry {} (entries missing or reordered)",
                self.next_seq, e.seq
            )));
        }
        if e.prev != self.prev {
            return Err(broken(format!(
                "entry {} links to {} but the entry before it hashes to {}",
                e.seq,
                hex(&e.prev),
                hex(&self.prev)
            )));
        }
        let want = e.entry.chain_hash(e.seq, &e.prev);
        if e.hash != want {
            return Err(broken(format!(
                "entry {} was altered: its content hashes to {}, stored {}",
                e.seq,
                hex(&want),
                hex(&e.hash)
            )));
        }
        self.prev = e.hash;
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// The hash the next entry must link to.
    pub fn head(&self) -> Digest {
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str) -> AuditEntry {
        AuditEntry {
            at: Timestamp::from_millis(1),
            node: "n".into(),
            user: user.into(),
            force: Some(ForceId::new("AVON").unwrap()),
            roles: vec![Role::Analyst],
            action: "search.vrm".into(),
            purpose: "serious-crime".into(),
            case_ref: "OP-1".into(),
            authorisation: String::new(),
            query: "{\"vrm\":\"AB12CDE\"}".into(),
            returned: vec![(ForceId::new("KENT").unwrap(), 3)],
            outcome: Outcome::Ok,
        }
    }

    fn chain(n: usize) -> Vec<ChainedEntry> {
        let mut prev = GENESIS;
        (1..=n as u64)
            .map(|seq| {
                let entry = entry(&format!("u{seq}"));
                let hash = entry.chain_hash(seq, &prev);
                let e = ChainedEntry {
                    seq,
                    prev,
                    hash,
                    entry,
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[ChainedEntry]) -> Result<u64, BrokenLink> {
        let mut c = ChainCheck::default();
        for e in entries {
            c.check(e)?;
        }
        Ok(c.checked)
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert!(!format!("{:?}", entry("x")).contains("AB12CDE"));
    }

    #[test]
    fn an_edit_a_deletion_and_a_relink_are_each_found_where_they_are() {
        let mut edited = chain(5);
        edited[2].entry.user = "someone else".into();
        let b = verify(&edited).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("altered"), "{}", b.reason);

        let mut deleted = chain(5);
        deleted.remove(3);
        assert_eq!(verify(&deleted).unwrap_err().seq, 4);

        // Deleting an entry and renumbering the rest breaks the link.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        let b = verify(&renumbered).unwrap_err();
        assert_eq!(b.seq, 2);

        // Recomputing an edited entry's own hash still breaks the next link.
        let mut rehashed = chain(5);
        rehashed[1].entry.case_ref = "OP-2".into();
        rehashed[1].hash = rehashed[1].entry.chain_hash(2, &rehashed[1].prev);
        assert_eq!(verify(&rehashed).unwrap_err().seq, 3);
    }
}
