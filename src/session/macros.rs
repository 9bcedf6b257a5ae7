//! Macro values by stage, scoped the way libmilter scopes them.

use crate::proto::MacroStage;

/// Lookup order: the most recent stage first.
const LOOKUP_ORDER: [MacroStage; 7] = [
    MacroStage::EndOfMessage,
    MacroStage::EndOfHeaders,
    MacroStage::Data,
    MacroStage::Rcpt,
    MacroStage::Mail,
    MacroStage::Helo,
    MacroStage::Connect,
];

/// Macro values received so far, one raw block of NUL-terminated name/value pairs per stage.
///
/// Each stage keeps the last packet that carried any pair: Postfix sends a packet before every
/// command, often empty, and an empty one must not erase values sent earlier. A packet for a
/// stage clears the stages after it (a new RCPT clears DATA, end-of-headers and
/// end-of-message values), as libmilter does. Blocks are reused, so steady state allocates
/// nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct MacroStore {
    stages: [Vec<u8>; 7],
}

fn slot(stage: MacroStage) -> usize {
    u32::from(stage) as usize
}

/// How early a stage comes; a packet for a stage clears every stage of a higher rank.
fn rank(stage: MacroStage) -> u8 {
    match stage {
        MacroStage::Connect => 0,
        MacroStage::Helo => 1,
        MacroStage::Mail => 2,
        MacroStage::Rcpt => 3,
        MacroStage::Data | MacroStage::EndOfHeaders | MacroStage::EndOfMessage => 4,
    }
}

impl MacroStore {
    /// Records a packet's pairs (`raw` is checked wire bytes: name, NUL, value, NUL, …).
    pub(crate) fn set(&mut self, stage: MacroStage, raw: &[u8]) {
        self.clear_after(stage);
        if raw.is_empty() {
            return;
        }
        if let Some(block) = self.stages.get_mut(slot(stage)) {
            block.clear();
            block.extend_from_slice(raw);
        }
    }

    /// Forgets every value, keeping the blocks' storage.
    pub(crate) fn clear(&mut self) {
        for block in &mut self.stages {
            block.clear();
        }
    }

    /// Forgets the values of every stage that comes after `stage`.
    pub(crate) fn clear_after(&mut self, stage: MacroStage) {
        for later in MacroStage::ALL {
            if rank(later) > rank(stage) {
                if let Some(block) = self.stages.get_mut(slot(later)) {
                    block.clear();
                }
            }
        }
    }

    /// Looks `name` up, most recent stage first; `x` and `{x}` name the same macro.
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        LOOKUP_ORDER
            .iter()
            .find_map(|&stage| self.get_in(stage, name))
    }

    /// Looks `name` up in one stage.
    pub(crate) fn get_in(&self, stage: MacroStage, name: &str) -> Option<&[u8]> {
        let wanted = strip_braces(name.as_bytes());
        let block = self.stages.get(slot(stage))?;
        let mut parts = block.split(|&b| b == 0);
        let mut found = None;
        while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
            if strip_braces(key) == wanted {
                found = Some(value);
            }
        }
        found
    }

    /// Every pair of one stage, in packet order.
    pub(crate) fn pairs(&self, stage: MacroStage) -> impl Iterator<Item = (&[u8], &[u8])> {
        let block = self.stages.get(slot(stage)).map_or(&[][..], Vec::as_slice);
        let mut parts = block.strip_suffix(&[0]).unwrap_or(block).split(|&b| b == 0);
        std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))
    }
}

fn strip_braces(name: &[u8]) -> &[u8] {
    name.strip_prefix(b"{")
        .and_then(|inner| inner.strip_suffix(b"}"))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::MacroStore;
    use crate::proto::MacroStage;

    #[test]
    fn braces_are_optional_in_lookups() {
        let mut store = MacroStore::default();
        store.set(
            MacroStage::Connect,
            b"j\0mx.example\0{daemon_name}\0smtpd\0",
        );
        assert_eq!(store.get("j"), Some(&b"mx.example"[..]));
        assert_eq!(store.get("{j}"), Some(&b"mx.example"[..]));
        assert_eq!(store.get("daemon_name"), Some(&b"smtpd"[..]));
        assert_eq!(store.get("{daemon_name}"), Some(&b"smtpd"[..]));
        assert_eq!(store.get("v"), None);
    }

    #[test]
    fn empty_packets_keep_earlier_values() {
        let mut store = MacroStore::default();
        store.set(MacroStage::EndOfHeaders, b"i\0ABC123\0");
        store.set(MacroStage::EndOfHeaders, b"");
        assert_eq!(store.get("i"), Some(&b"ABC123"[..]));
    }

    #[test]
    fn newest_stage_wins_and_earlier_stages_clear_later_ones() {
        let mut store = MacroStore::default();
        store.set(MacroStage::Mail, b"i\0FROM-MAIL\0");
        store.set(MacroStage::Rcpt, b"i\0FROM-RCPT\0{rcpt_addr}\0a@b\0");
        store.set(MacroStage::Data, b"i\0FROM-DATA\0");
        assert_eq!(store.get("i"), Some(&b"FROM-DATA"[..]));
        store.set(MacroStage::Rcpt, b"{rcpt_addr}\0c@d\0");
        assert_eq!(store.get("i"), Some(&b"FROM-MAIL"[..]), "RCPT cleared DATA");
        assert_eq!(store.get("rcpt_addr"), Some(&b"c@d"[..]));
        store.set(MacroStage::Helo, b"");
        assert_eq!(store.get("i"), None, "HELO cleared MAIL and later");
    }

    #[test]
    fn pairs_lists_one_stage() {
        let mut store = MacroStore::default();
        store.set(MacroStage::Connect, b"j\0mx\0_\0client [192.0.2.1]\0");
        let pairs: Vec<_> = store.pairs(MacroStage::Connect).collect();
        assert_eq!(
            pairs,
            vec![
                (&b"j"[..], &b"mx"[..]),
                (&b"_"[..], &b"client [192.0.2.1]"[..])
            ]
        );
        assert_eq!(store.pairs(MacroStage::Helo).count(), 0);
    }
}
