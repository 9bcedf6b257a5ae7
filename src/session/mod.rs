//! The session layer: one filter call per message, fed by a phase machine.
//!
//! This layer knows no sockets and no runtime. The connection driver pushes decoded
//! commands into a [`Session`]'s mailbox and polls the filter's future directly; the
//! session's awaitables drain the mailbox, so no channel or extra task sits between the
//! wire and the filter.

mod api;
mod connection_data;
mod edits;
mod error;
mod event;
mod filter;
mod macros;
mod mailbox;
mod phase;
mod state;
mod streams;
mod text;
mod verdict;

pub use api::Session;
pub(crate) use api::{Arrival, Finished, Recycled};
pub(crate) use connection_data::{ConnectionData, HeaderLimits};
pub(crate) use edits::{EditQueue, EditStorage, HeaderLayout};
pub use edits::{HeaderHandle, HeaderPosition, MAX_QUEUED_EDITS, SENDMAIL_HEADER_TEMPLATES};
pub use error::{Error, Misuse, Unavailable};
pub(crate) use event::Event;
pub use event::{Address, Client};
pub(crate) use filter::BoxCallFuture;
pub use filter::{BoxFilterFuture, Filter, FilterFn, FnFilter, Member, filter_fn};
pub(crate) use mailbox::{EventReply, Mailbox, SharedMailbox, lock};
pub use phase::Phase;
pub use streams::{HeaderField, Recipient, UnknownCommand};
pub use text::Text;
pub use verdict::Verdict;
