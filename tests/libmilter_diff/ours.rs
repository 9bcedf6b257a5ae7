//! The async-milter side: `diff_milter.c` written with hooks, the style libmilter users
//! know. The plan grammar is the one documented at the top of `diff_milter.c`; every
//! function here mirrors the C function of the same name.

use async_milter::Bytes;
use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::{Actions, Family, MacroStage, ProtocolFlags, ReplyCode};
use async_milter::session::{Address, Client, HeaderField, HeaderPosition, Text};

/// The negotiation of a run; the names are `diff_milter.c`'s CONFIG argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Config {
    Full,
    NoReply,
    NrAll,
    Minimal,
    Options,
    Macros,
}

impl Config {
    pub(crate) const ALL: [Self; 6] = [
        Self::Full,
        Self::NoReply,
        Self::NrAll,
        Self::Minimal,
        Self::Options,
        Self::Macros,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::NoReply => "noreply",
            Self::NrAll => "nr_all",
            Self::Minimal => "minimal",
            Self::Options => "options",
            Self::Macros => "macros",
        }
    }
}

/// Per connection: the position of the current recipient, header and body chunk.
#[derive(Default)]
pub(crate) struct Counters {
    rcpt: u32,
    hdr: u32,
    body: u32,
}

impl Counters {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The milter for `config`, as a libmilter author's filter maps onto hooks: a callback
/// that answers is a hook returning `Status`, one that does not returns `()`.
pub(crate) fn milter(config: Config) -> Hooks<Counters> {
    let hooks = Hooks::new(Counters::default).on_eom(eom).on_abort(abort);
    match config {
        Config::Minimal => hooks.actions(Actions::ADD_HEADERS | Actions::CHANGE_HEADERS),
        Config::NrAll => hooks
            .on_connect(connect_nr)
            .on_helo(helo_nr)
            .on_mail(mail_nr)
            .on_rcpt(rcpt_nr)
            .on_data(data_nr)
            .on_header(header_nr)
            .on_eoh(eoh_nr)
            .on_body(body_nr)
            .on_unknown(unknown_nr),
        Config::NoReply => answering_envelope(hooks)
            .on_header(header_nr)
            .on_eoh(eoh_nr)
            .on_body(body_nr),
        Config::Full => answering(hooks),
        Config::Options => answering(hooks)
            .options(ProtocolFlags::RCPT_REJECTED | ProtocolFlags::HEADER_LEADING_SPACE)
            .macros(MacroStage::Connect, "j {plan}")
            .macros(MacroStage::Helo, "{cipher}"),
        Config::Macros => answering(hooks)
            .macros(MacroStage::Rcpt, "{rcpt_addr}")
            .macros(MacroStage::EndOfMessage, "{msg_id}"),
    }
}

fn answering_envelope(hooks: Hooks<Counters>) -> Hooks<Counters> {
    hooks
        .on_connect(connect)
        .on_helo(helo)
        .on_mail(mail)
        .on_rcpt(rcpt)
        .on_data(data)
        .on_unknown(unknown)
}

fn answering(hooks: Hooks<Counters>) -> Hooks<Counters> {
    answering_envelope(hooks)
        .on_header(header)
        .on_eoh(eoh)
        .on_body(body)
}

// ===== the plan =====

/// The value of `key` in the plan (`{plan}`, newest stage first).
fn plan_item(ctx: &Context<'_>, key: &str) -> Option<String> {
    let plan = ctx.macro_str("{plan}")?;
    plan.split(';')
        .find_map(|item| item.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

fn reply(code: &str, enhanced: &str, lines: &[&str]) -> Option<ReplyCode> {
    let code: u16 = code.parse().ok()?;
    let enhanced = if enhanced == "-" { "" } else { enhanced };
    let mut reply = ReplyCode::new(code, enhanced, lines.first()?).ok()?;
    for line in &lines[1..] {
        reply = reply.with_line(line).ok()?;
    }
    Some(reply)
}

fn by_class(code: &str) -> Status {
    if code.starts_with('4') {
        Status::Tempfail
    } else {
        Status::Reject
    }
}

fn status_named(name: &str) -> Status {
    match name {
        "tf" => Status::Tempfail,
        "acc" => Status::Accept,
        "cont" => Status::Continue,
        _ => Status::Reject,
    }
}

/// Sets `reply` (if it is a valid one) for the status the hook returns, as `smfi_setreply`.
fn set_reply(ctx: &mut Context<'_>, reply: Option<ReplyCode>) {
    if let Some(reply) = reply {
        ctx.set_reply(reply);
    }
}

/// The answer to the event `stage` (the n-th of its kind in the message, 0 when not
/// counted); `echo` describes the event.
fn decide(ctx: &mut Context<'_>, stage: &str, n: u32, echo: &str) -> Status {
    let action = (n > 0)
        .then(|| plan_item(ctx, &format!("{stage}{n}")))
        .flatten()
        .or_else(|| plan_item(ctx, stage));
    let Some(action) = action else {
        return Status::Continue;
    };
    let f: Vec<&str> = action.splitn(8, '/').collect();
    match (f[0], f.len()) {
        ("acc", _) => Status::Accept,
        ("rej", _) => Status::Reject,
        ("tf", _) => Status::Tempfail,
        ("disc", _) => Status::Discard,
        ("skip", _) => Status::Skip,
        ("reply", 4..) => {
            set_reply(ctx, reply(f[1], f[2], &[f[3]]));
            by_class(f[1])
        }
        ("setreply", 5..) => {
            set_reply(ctx, reply(f[1], f[2], &[f[3]]));
            status_named(f[4])
        }
        ("ml", 5..) => {
            set_reply(ctx, reply(f[1], f[2], &f[3..f.len().min(6)]));
            by_class(f[1])
        }
        ("echo", _) => {
            set_reply(ctx, reply("550", "5.7.1", &[echo]));
            Status::Reject
        }
        ("macro", 2..) => {
            let text = match ctx.macro_value(f[1]) {
                Some(value) => format!("{}={}", f[1], String::from_utf8_lossy(value)),
                None => format!("{} unset", f[1]),
            };
            set_reply(ctx, reply("550", "5.7.1", &[&text]));
            Status::Reject
        }
        _ => Status::Continue,
    }
}

fn lossy(text: &Text) -> String {
    String::from_utf8_lossy(text.as_bytes()).into_owned()
}

/// "address arg arg ..."
fn join_argv(address: &Address) -> String {
    std::iter::once(&address.address)
        .chain(&address.args)
        .map(lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

// ===== the hooks =====

async fn connect(c: &mut Counters, ctx: &mut Context<'_>, client: Client) -> Status {
    c.reset();
    let (family, addr) = match client.family {
        Family::Inet => ('4', client.ip().map_or("-".to_owned(), |ip| ip.to_string())),
        Family::Inet6 => ('6', client.ip().map_or("-".to_owned(), |ip| ip.to_string())),
        Family::Unix => ('L', lossy(&client.address)),
        Family::Unknown => ('U', "-".to_owned()),
    };
    let text = format!(
        "host={} family={family} port={} addr={addr}",
        lossy(&client.hostname),
        client.port
    );
    decide(ctx, "conn", 0, &text)
}

async fn helo(_: &mut Counters, ctx: &mut Context<'_>, name: Text) -> Status {
    decide(ctx, "helo", 0, &format!("helo={}", lossy(&name)))
}

async fn mail(c: &mut Counters, ctx: &mut Context<'_>, from: Address) -> Status {
    c.reset();
    decide(ctx, "mail", 0, &join_argv(&from))
}

async fn rcpt(c: &mut Counters, ctx: &mut Context<'_>, to: Address) -> Status {
    c.rcpt += 1;
    decide(ctx, "rcpt", c.rcpt, &join_argv(&to))
}

async fn data(_: &mut Counters, ctx: &mut Context<'_>) -> Status {
    decide(ctx, "data", 0, "data")
}

async fn header(c: &mut Counters, ctx: &mut Context<'_>, field: HeaderField) -> Status {
    c.hdr += 1;
    let text = format!("[{}]=[{}]", lossy(&field.name), lossy(&field.value));
    decide(ctx, "hdr", c.hdr, &text)
}

async fn eoh(_: &mut Counters, ctx: &mut Context<'_>) -> Status {
    decide(ctx, "eoh", 0, "eoh")
}

async fn body(c: &mut Counters, ctx: &mut Context<'_>, chunk: Bytes) -> Status {
    c.body += 1;
    decide(ctx, "body", c.body, &format!("len={}", chunk.len()))
}

async fn unknown(_: &mut Counters, ctx: &mut Context<'_>, command: Text) -> Status {
    decide(ctx, "unknown", 0, &format!("unknown={}", lossy(&command)))
}

// Not answered: the event is only counted, as the C callbacks return SMFIS_NOREPLY.

async fn connect_nr(c: &mut Counters, _: &mut Context<'_>, _: Client) {
    c.reset();
}

async fn helo_nr(_: &mut Counters, _: &mut Context<'_>, _: Text) {}

async fn mail_nr(c: &mut Counters, _: &mut Context<'_>, _: Address) {
    c.reset();
}

async fn rcpt_nr(c: &mut Counters, _: &mut Context<'_>, _: Address) {
    c.rcpt += 1;
}

async fn data_nr(_: &mut Counters, _: &mut Context<'_>) {}

async fn header_nr(c: &mut Counters, _: &mut Context<'_>, _: HeaderField) {
    c.hdr += 1;
}

async fn eoh_nr(_: &mut Counters, _: &mut Context<'_>) {}

async fn body_nr(c: &mut Counters, _: &mut Context<'_>, _: Bytes) {
    c.body += 1;
}

async fn unknown_nr(_: &mut Counters, _: &mut Context<'_>, _: Text) {}

async fn abort(c: &mut Counters, _: &mut Context<'_>) {
    c.reset();
}

// ===== end of message =====

/// `~` in a replacement body stands for CRLF.
fn crlf(text: &str) -> Vec<u8> {
    text.replace('~', "\r\n").into_bytes()
}

/// `len` bytes of lines of 76 letters ending in CRLF (as `big_body` in the C filter).
pub(crate) fn big_body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match i % 78 {
            76 => b'\r',
            77 => b'\n',
            _ => b'a' + ((i / 78) % 26) as u8,
        })
        .collect()
}

/// The `n`-th (from 1; 0 counts as 1) header seen called `name`.
fn nth_header(ctx: &Context<'_>, name: &str, n: &str) -> Option<HeaderField> {
    let n: usize = n.parse().ok()?;
    ctx.headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .nth(n.max(1) - 1)
        .cloned()
}

/// The seen header at 0-based position `p`.
fn at_position(ctx: &Context<'_>, p: &str) -> Option<HeaderField> {
    ctx.headers().get(p.parse::<usize>().ok()?).cloned()
}

/// Queues one edit; a refused edit is dropped, as the C filter ignores a failed call.
fn apply_edit(ctx: &mut Context<'_>, edit: &str) {
    let f: Vec<&str> = edit.splitn(8, '/').collect();
    let _ = match (f[0], f.len()) {
        ("addhdr", 3..) => ctx.add_header(f[1], f[2]),
        ("ins", 4..) if f[1] == "top" => ctx.insert_header(HeaderPosition::Top, f[2], f[3]),
        ("ins", 5..) if f[1] == "before" || f[1] == "after" => {
            let at = match (at_position(ctx, f[2]), f[1]) {
                (Some(h), "before") => HeaderPosition::Before(h.handle),
                (Some(h), _) => HeaderPosition::After(h.handle),
                (None, _) => HeaderPosition::End,
            };
            ctx.insert_header(at, f[3], f[4])
        }
        ("chghdr", 4..) => match nth_header(ctx, f[1], f[2]) {
            Some(h) => ctx.change_header(h.handle, f[3]),
            None => Ok(()),
        },
        ("delhdr", 3..) => match nth_header(ctx, f[1], f[2]) {
            Some(h) => ctx.delete_header(h.handle),
            None => Ok(()),
        },
        // smfi_replacebody called again appends: append_body is its counterpart.
        ("body", 2..) => ctx.append_body(crlf(f[1])),
        ("bigbody", 2..) => ctx.append_body(big_body(f[1].parse().unwrap_or(0))),
        ("emptybody", _) => ctx.append_body(b""),
        ("chgfrom", 2..) => ctx.change_sender(f[1], f.get(2).copied()),
        ("addrcpt", 2..) => ctx.add_recipient(f[1], None),
        ("addrcptpar", 3..) => ctx.add_recipient(f[1], Some(f[2])),
        ("delrcpt", 2..) => ctx.remove_recipient(f[1]),
        ("quar", 2..) => ctx.quarantine(f[1]),
        ("progress", _) => {
            ctx.progress();
            Ok(())
        }
        _ => Ok(()),
    };
}

async fn eom(c: &mut Counters, ctx: &mut Context<'_>) -> Status {
    if let Some(edits) = plan_item(ctx, "edits") {
        for edit in edits.split('|') {
            apply_edit(ctx, edit);
        }
    }
    let status = decide(ctx, "eom", 0, "eom");
    c.reset();
    status
}
