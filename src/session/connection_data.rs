//! What a connection keeps across messages: the client, HELO, connection-stage macros.

use std::sync::Arc;

use super::event::{Client, Event};
use super::macros::MacroStore;
use super::text::Text;
use crate::proto::{Agreed, MacroStage};

/// Connection-level state, shared by reference count with each message's session.
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

    /// Whether `event` changes connection-level state (the driver and the session both keep
    /// a copy up to date through this test and [`ConnectionData::apply`]).
    pub(crate) fn is_connection_event(event: &Event) -> bool {
        matches!(
            event,
            Event::Connect(_)
                | Event::Helo(_)
                | Event::Macro {
                    stage: MacroStage::Connect | MacroStage::Helo,
                    ..
                }
        )
    }

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
