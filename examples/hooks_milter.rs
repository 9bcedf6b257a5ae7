//! A milter written the pymilter way: one object per connection, one method per event.
//!
//! - Logs every event with the connection id (`RUST_LOG=info`, the default).
//! - At end of message: deletes every `X-Internal` header, adds
//!   `X-Hooks-Milter: message N, R recipients, B body bytes` (N counts the messages of the
//!   connection) and adds the recipient `<archive@example.com>`.
//! - Logs the connection's message count when it closes.
//!
//! Every hook but end of message returns nothing, so the MTA sends those events without
//! waiting for a reply (`NR_*` negotiated); only end of message is answered.
//!
//! Run: `cargo run --example hooks_milter [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::Actions;
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::{Address, Client, HeaderField, HeaderHandle};
use async_milter::{Bytes, Error, Text};
use log::info;

/// The per-connection object (pymilter's `Milter.Base` subclass instance).
#[derive(Default)]
struct Archiver {
    /// Messages seen on this connection.
    messages: u32,
    // Per message, reset at MAIL:
    recipients: u32,
    body_bytes: usize,
    internal: Vec<HeaderHandle>,
}

// Hooks are async fns by contract; these have nothing to await.
#[allow(clippy::unused_async)]
impl Archiver {
    async fn connect(&mut self, ctx: &mut Context<'_>, client: Client) {
        info!(
            "[{}] connect from {} [{}]",
            ctx.connection_id(),
            client.hostname,
            client.address
        );
    }

    async fn helo(&mut self, ctx: &mut Context<'_>, name: Text) {
        info!("[{}] helo {name}", ctx.connection_id());
    }

    async fn mail(&mut self, ctx: &mut Context<'_>, from: Address) {
        self.messages += 1;
        self.recipients = 0;
        self.body_bytes = 0;
        self.internal.clear();
        info!(
            "[{}] mail from {} {:?} (message {} of the connection)",
            ctx.connection_id(),
            from.address,
            from.args,
            self.messages
        );
    }

    async fn rcpt(&mut self, ctx: &mut Context<'_>, to: Address) {
        self.recipients += 1;
        info!(
            "[{}] rcpt to {} {:?}",
            ctx.connection_id(),
            to.address,
            to.args
        );
    }

    async fn data(&mut self, ctx: &mut Context<'_>) {
        info!("[{}] data", ctx.connection_id());
    }

    async fn header(&mut self, ctx: &mut Context<'_>, field: HeaderField) {
        info!(
            "[{}] header {}: {}",
            ctx.connection_id(),
            field.name,
            field.value
        );
        if field.name.eq_ignore_ascii_case("X-Internal") {
            self.internal.push(field.handle);
        }
    }

    async fn eoh(&mut self, ctx: &mut Context<'_>) {
        info!("[{}] end of headers", ctx.connection_id());
    }

    async fn body(&mut self, ctx: &mut Context<'_>, chunk: Bytes) {
        self.body_bytes += chunk.len();
        info!(
            "[{}] body chunk of {} bytes",
            ctx.connection_id(),
            chunk.len()
        );
    }

    async fn eom(&mut self, ctx: &mut Context<'_>) -> Result<Status, Error> {
        info!(
            "[{}] end of message (queue id {})",
            ctx.connection_id(),
            ctx.queue_id().unwrap_or("-")
        );
        for handle in self.internal.drain(..) {
            ctx.delete_header(handle)?;
        }
        ctx.add_header(
            "X-Hooks-Milter",
            format!(
                "message {}, {} recipients, {} body bytes",
                self.messages, self.recipients, self.body_bytes
            ),
        )?;
        ctx.add_recipient("<archive@example.com>", None)?;
        Ok(Status::Continue)
    }

    async fn abort(&mut self, ctx: &mut Context<'_>) {
        info!("[{}] message aborted", ctx.connection_id());
    }

    async fn unknown(&mut self, ctx: &mut Context<'_>, command: Text) {
        info!("[{}] unknown command {command}", ctx.connection_id());
    }

    fn close(&mut self) {
        info!("connection closed after {} messages", self.messages);
    }
}

fn hooks() -> Hooks<Archiver> {
    Hooks::new(Archiver::default)
        .on_connect(Archiver::connect)
        .on_helo(Archiver::helo)
        .on_mail(Archiver::mail)
        .on_rcpt(Archiver::rcpt)
        .on_data(Archiver::data)
        .on_header(Archiver::header)
        .on_eoh(Archiver::eoh)
        .on_body(Archiver::body)
        .on_eom(Archiver::eom)
        .on_abort(Archiver::abort)
        .on_unknown(Archiver::unknown)
        .on_close(Archiver::close)
        .actions(Actions::ADD_HEADERS | Actions::CHANGE_HEADERS | Actions::ADD_RCPT)
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(hooks(), termination_signal()).await
    })
}
