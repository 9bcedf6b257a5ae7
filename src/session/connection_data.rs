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
    /// Most headers a message may have before its filter call fails.
    pub(crate) max_headers: usize,
}

impl ConnectionData {
    pub(crate) fn new(id: u64, agreed: Arc<Agreed>, max_headers: usize) -> Self {
        Self {
            id,
            agreed,
            client: None,
            helo: None,
            macros: MacroStore::default(),
            max_headers,
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

    use super::ConnectionData;
    use crate::proto::{Actions, Needs, OptNeg, ProtocolFlags, negotiate};

    /// Connection data of a version 6 connection that allows everything.
    pub(crate) fn data() -> Arc<ConnectionData> {
        let offer = OptNeg {
            version: 6,
            actions: Actions::V6,
            protocol: ProtocolFlags::EMPTY,
        };
        let agreed = negotiate(offer, &Needs::everything()).expect("negotiates");
        Arc::new(ConnectionData::new(1, Arc::new(agreed), 100))
    }
}
