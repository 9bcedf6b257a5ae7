//! The documented differences from libmilter: each says where it shows (which conversations,
//! which packets at the first exchange that differs) and why this crate's answer is right.

use super::runner::{Exchange, Packet};

/// One documented difference.
pub(crate) struct Difference {
    /// A short name, for the report of stale entries.
    pub(crate) id: &'static str,
    /// Why this crate's packets are the right ones (or, marked "to fix", why not yet).
    #[allow(dead_code)]
    pub(crate) reason: &'static str,
    /// The conversations where it may show.
    conversations: fn(&str) -> bool,
    /// The first differing exchange: libmilter's, then ours.
    packets: fn(Option<&Exchange>, Option<&Exchange>) -> bool,
}

impl Difference {
    pub(crate) fn matches(&self, name: &str, lib: Option<&Exchange>, ours: Option<&Exchange>) -> bool {
        (self.conversations)(name) && (self.packets)(lib, ours)
    }
}

#[allow(dead_code)]
fn replies(exchange: Option<&Exchange>) -> &[Packet] {
    exchange.map_or(&[], |e| e.replies.as_slice())
}

pub(crate) fn allowed() -> Vec<Difference> {
    vec![]
}
