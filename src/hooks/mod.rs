//! The callback style: a value per connection and a hook per event, as pymilter,
//! purepythonmilter and libmilter users know it, built on the session kernel.
//!
//! ```
//! use async_milter::hooks::{Context, Hooks, Status};
//! use async_milter::session::{Address, HeaderField};
//!
//! #[derive(Default)]
//! struct Tagger {
//!     from_outside: bool,
//!     subject: Option<HeaderField>,
//! }
//!
//! impl Tagger {
//!     async fn mail(&mut self, ctx: &mut Context<'_>, from: Address) -> Status {
//!         self.subject = None; // per-message fields start afresh at MAIL, as in pymilter
//!         self.from_outside = !from.address.eq_ignore_ascii_case("<boss@example.com>");
//!         if from.address.is_empty() {
//!             return Status::Reject;
//!         }
//!         Status::Continue
//!     }
//!
//!     // Returns nothing: negotiated as not answered (NR_HEADER), the MTA does not wait.
//!     async fn header(&mut self, _ctx: &mut Context<'_>, field: HeaderField) {
//!         if field.name.eq_ignore_ascii_case("Subject") {
//!             self.subject = Some(field);
//!         }
//!     }
//!
//!     async fn eom(&mut self, ctx: &mut Context<'_>) -> Result<Status, async_milter::Error> {
//!         if let (true, Some(subject)) = (self.from_outside, &self.subject) {
//!             let mut tagged = b"[EXTERNAL] ".to_vec();
//!             tagged.extend_from_slice(subject.value.as_bytes());
//!             ctx.change_header(subject.handle, tagged)?;
//!         }
//!         Ok(Status::Accept)
//!     }
//! }
//!
//! let milter = Hooks::new(Tagger::default)
//!     .on_mail(Tagger::mail)
//!     .on_header(Tagger::header)
//!     .on_eom(Tagger::eom);
//! // Negotiated: MAIL answered, HEADER sent but not answered (NR_HDR), everything else
//! // negotiated away (NO_CONNECT, NO_HELO, NO_RCPT, …). `milter` is a `Filter`: serve it
//! // with `Server::serve` like any other.
//! # fn is_filter(_: &impl async_milter::Filter) {}
//! # is_filter(&milter);
//! ```
//!
//! # The shape, and why
//!
//! Hooks are `async fn`s or methods registered on a builder, [`Hooks`]; each takes the
//! per-connection value (`&mut S`), a [`Context`], and the event's argument by value.
//! Registration is what tells the library which events exist and whether they are
//! answered, so nothing is written twice and no flag is written at all:
//!
//! - **a hook not registered** is negotiated away (`NO_*`): the MTA does not send the event;
//! - **a hook returning `()`** (or `Result<(), E>`) is negotiated as not answered
//!   (`NR_*`): the MTA does not wait for it; a hook returning [`Status`] (or
//!   `Result<Status, E>`) may answer. The return type is read through [`HookResult`]
//!   (`const ANSWERS`), at compile time.
//!
//! A trait with one default method per hook (pymilter's class) cannot tell "overridden" from
//! "default" in Rust, nor a default returning `()` from an override returning `Status`; a
//! builder of functions can, and a method path (`Tagger::eom`) reads like the class it
//! replaces. The bounds [`Hook`] and [`HookWith`] say that the future borrows the value and
//! the context (`for<'a> Fn(&'a mut S, &'a mut Context<'a>, A) -> impl Future + 'a`), which a
//! closure bound cannot; every `async fn` with that signature satisfies them, so users never
//! name them. Each hook call is boxed once (one allocation per event): the price of holding
//! hooks of different types in one builder.
//!
//! # Built on the session kernel
//!
//! [`Hooks`] is a [`Filter`](crate::Filter) like any other: one filter call per message, in
//! which a loop awaits each event and calls its hook. So everything the kernel guarantees
//! holds: edits are checked when queued (an error to the hook at once), faults are contained
//! (a hook that fails or panics gets the connection's error reply for that message only),
//! verdicts land where the MTA applies them, PROGRESS is sent every 5 seconds while the
//! end-of-message hook works, and [`Context::progress`] asks for one the next time the hook
//! yields (a hook that answers without yielding needs none).
//!
//! Where a status lands: at CONNECT or HELO it applies to the connection, at RCPT reject,
//! tempfail and a reply code refuse that recipient (accept and discard apply to the message
//! and are sent at DATA), at an unknown command they refuse that command, elsewhere they
//! apply to the message. A status other than continue or skip ends the message for the hooks:
//! no more hooks run for it, and the next message starts with its first event. `Continue`
//! and `Accept` at end of message both send the queued edits first.
//!
//! # The per-connection value
//!
//! The factory given to [`Hooks::new`] makes one value per connection, on the connection's
//! first event; the same value then sees every message of the connection (reset per-message
//! fields in the MAIL hook, as pymilter users do). It is kept in the session's connection
//! state; the close hook runs when that state is dropped, at the end of the connection
//! however it ends (QUIT, the MTA closing, a read timeout, a server shutdown), and for a new
//! SMTP session on the same connection (`QUIT_NC`), which then gets a new value.
//!
//! # Coming from pymilter or libmilter
//!
//! | pymilter (`Milter.Base`) | libmilter | here |
//! |---|---|---|
//! | `__init__` (one object per connection) | `smfi_setpriv` / `smfi_getpriv` | [`Hooks::new`]`(factory)`: the value `S` handed to every hook as `&mut S` |
//! | `connect(self, hostname, family, hostaddr)` | `xxfi_connect` | [`Hooks::on_connect`]: `async fn(&mut S, &mut Context<'_>, Client)` |
//! | `hello(self, heloname)` | `xxfi_helo` | [`Hooks::on_helo`]: `…, Text)` |
//! | `envfrom(self, f, *str)` | `xxfi_envfrom` | [`Hooks::on_mail`]: `…, Address)` (`address`, `args`) |
//! | `envrcpt(self, to, *str)` | `xxfi_envrcpt` | [`Hooks::on_rcpt`]: `…, Address)` |
//! | `data(self)` | `xxfi_data` | [`Hooks::on_data`] |
//! | `header(self, field, value)` | `xxfi_header` | [`Hooks::on_header`]: `…, HeaderField)` (`name`, `value`, `handle`) |
//! | `eoh(self)` | `xxfi_eoh` | [`Hooks::on_eoh`] |
//! | `body(self, chunk)` | `xxfi_body` | [`Hooks::on_body`]: `…, Bytes)` |
//! | `eom(self)` | `xxfi_eom` | [`Hooks::on_eom`] |
//! | `abort(self)` | `xxfi_abort` | [`Hooks::on_abort`] |
//! | `close(self)` | `xxfi_close` | [`Hooks::on_close`]: a plain `Fn(&mut S)` |
//! | `unknown(self, cmd)` | `xxfi_unknown` | [`Hooks::on_unknown`]: `…, Text)` |
//! | `negotiate`, `@nocallback`, `@noreply` | `xxfi_negotiate`, `SMFIP_*` | nothing to write: derived from the hooks registered and their return types |
//! | `Milter.CONTINUE`, `ACCEPT`, `REJECT`, `TEMPFAIL`, `DISCARD`, `SKIP` | `SMFIS_*` | [`Status`] |
//! | `self.setreply(code, xcode, msg)` | `smfi_setreply` | [`Context::set_reply`], or return [`Status::Reply`] |
//! | `self.getsymval(name)` | `smfi_getsymval` | [`Context::macro_str`], [`Context::macro_value`] |
//! | `self.addheader(name, value, idx)` | `smfi_addheader`, `smfi_insheader` | [`Context::add_header`], [`Context::insert_header`] |
//! | `self.chgheader(name, idx, value)` | `smfi_chgheader` | [`Context::change_header`], [`Context::delete_header`] (by the header's handle, not an index) |
//! | `self.replacebody(chunk)` | `smfi_replacebody` | [`Context::append_body`] (repeatable), [`Context::replace_body`] |
//! | `self.chgfrom(sender, params)` | `smfi_chgfrom` | [`Context::change_sender`] |
//! | `self.addrcpt(rcpt, params)` | `smfi_addrcpt`, `smfi_addrcpt_par` | [`Context::add_recipient`] |
//! | `self.delrcpt(rcpt)` | `smfi_delrcpt` | [`Context::remove_recipient`] |
//! | `self.quarantine(reason)` | `smfi_quarantine` | [`Context::quarantine`] |
//! | `self.progress()` | `smfi_progress` | `ctx.progress()` in the end-of-message hook (also automatic, every 5 s) |
//! | `Milter.set_flags(ADDHDRS \| …)` | `xxfi_flags` | [`Hooks::actions`] (required), [`Hooks::optional_actions`]; by default every edit the MTA allows |
//! | `setsymlist` | `smfi_setsymlist` | [`Hooks::macros`] |
//! | `Milter.runmilter(name, socket, timeout)` | `smfi_main` | `Server::bind(spec).await?.serve(hooks)` |

mod builder;
mod context;
mod home;
mod hook_fn;

pub use builder::Hooks;
pub use context::Context;
pub use hook_fn::{Hook, HookResult, HookWith, Status};
