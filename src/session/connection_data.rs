//! What a connection keeps across messages: the client, HELO, connection-stage macros.

use std::sync::Arc;

use super::event::{Client, Event};
use super::macros::MacroStore;
use super::text::Text;
use crate::proto::{Agreed, MacroStage};

/// Connection-level state: written by the connection core, read by each message's session
/// through a shared, replace-on-write copy.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionData {
    pub(crate) id: u64,
    pub(crate) agreed: Arc<Agreed>,
    pub(crate) client: Option<Client>,
    pub(crate) helo: Option<Text>,
    /// CONNECT and HELO stage macros only.
    pub(crate) macros: MacroStore,
    /// How much header a message may have before its filter call fails.
    pub(crate) header_limits: HeaderLimits,
}

/// The limits on one message's headers (`ConnectionConfig::max_headers` and
/// `max_header_bytes`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderLimits {
    /// Most headers.
    pub(crate) count: usize,
    /// Most bytes of names and values together.
    pub(crate) bytes: usize,
}

impl ConnectionData {
    pub(crate) fn new(id: u64, agreed: Arc<Agreed>, header_limits: HeaderLimits) -> Self {
        Self {
            id,
            agreed,
            client: None,
            helo: None,
            macros: MacroStore::default(),
            header_limits,
        }
    }

    /// Records what a connection-level event (CONNECT, HELO, their macros) tells; the
    /// connection core calls it, sessions only read the result.
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::Connect(client) => {
                self.client = Some(client.clone());
                self.helo = None;
            }
            Event::Helo(name) => self.helo = Some(name.clone()),
            Event::Macro { stage, raw } => {
                if matches!(stage, MacroStage::Connect | MacroStage::Helo) {
                    self.macros.set(*stage, raw);
                }
            }
            _ => {}
        }
    }

    /// Clears everything the SMTP session set (`QUIT_NC`: a new SMTP session follows).
    pub(crate) fn reset(&mut self) {
        self.client = None;
        self.helo = None;
        self.macros = MacroStore::default();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::{ConnectionData, HeaderLimits};
    use crate::proto::{Actions, Needs, OptNeg, ProtocolFlags, negotiate};

    /// Connection data of a version 6 connection that allows everything.
    pub(crate) fn data() -> Arc<ConnectionData> {
        let offer = OptNeg {
            version: 6,
            actions: Actions::V6,
            protocol: ProtocolFlags::EMPTY,
        };
        let agreed = negotiate(offer, &Needs::everything()).expect("negotiates");
        let limits = HeaderLimits {
            count: 100,
            bytes: 64 * 1024,
        };
        Arc::new(ConnectionData::new(1, Arc::new(agreed), limits))
    }
}
