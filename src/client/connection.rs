//! The MTA side of one milter connection: negotiation and one method per command.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};

use super::error::{ClientError, NegotiationError};
use super::io::Framed;
use super::message::DeliveredHeader;
use super::profile::{MtaKind, Profile, QueueIdTiming};
use super::reply::{EndOfMessage, Modification, Negotiated, Reply};
use crate::proto::{
    Actions, Command, CommandKind, Connect, EnvelopeCommand, Family, Header, MAX_BODY_CHUNK,
    Macros, ProtocolFlags, Response, WireStr,
};

/// What the client remembers about the session, for macros and the delivered message.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionState {
    /// The session is over (QUIT sent, or closed after a connection-level verdict).
    pub(crate) closed: bool,
    pub(crate) helo: Option<String>,
    /// Client host name, address as sent, and port from CONNECT.
    pub(crate) client: Option<(String, String, u16)>,
    pub(crate) in_transaction: bool,
    pub(crate) queue_id_known: bool,
    pub(crate) mail_addr: Option<String>,
    pub(crate) rcpt_addr: Option<String>,
    /// Set while a recipient the MTA rejected is being sent: its status and text.
    pub(crate) rcpt_rejection: Option<(String, String)>,
    pub(crate) msg_id: Option<String>,
}

/// The MTA side of one milter connection.
///
/// Call [`negotiate`](Self::negotiate) first, then the step methods in the order an MTA
/// would (§5.1), or [`send_message`](Self::send_message) for a whole transaction. Each step
/// method sends the profile's MACRO packet first, skips a command suppressed by a `NO_*`
/// flag ([`Reply::NotSent`]), does not wait where an `NR_*` flag was negotiated
/// ([`Reply::NoReply`]), and otherwise returns the filter's answer, refusing answers that are
/// not allowed at that point. The client does not check the order of the calls, so a caller
/// can also send what no MTA would.
///
/// Profile behaviour tied to a step is applied by the step itself:
///
/// * a verdict that ends the transaction (at MAIL, ACCEPT or DISCARD at RCPT, any non-continue
///   answer from DATA to end of message) is followed by ABORT with the Postfix profile;
/// * a connection-level verdict (ACCEPT, REJECT, TEMPFAIL or a reply code at CONNECT or HELO)
///   or SHUTDOWN ends the session: Postfix closes the socket without QUIT, Sendmail sends
///   QUIT first; later commands fail with [`ClientError::SessionClosed`];
/// * with Postfix a repeated HELO is followed by ABORT; with Sendmail a HELO or MAIL inside an
///   open transaction is preceded by ABORT;
/// * [`quit`](Self::quit) sends ABORT for an open transaction, with Postfix one more ABORT if
///   a HELO was seen, then QUIT;
/// * [`quit_new_connection`](Self::quit_new_connection) sends ABORT for an open transaction,
///   then `QUIT_NC`, and leaves the stream open for the next session's CONNECT.
///
/// Macro values the client computes itself (a name in [`Profile::macro_values`] overrides
/// them): `i` (the queue ID, from [`Profile::queue_id_timing`] on), `j`, `_`
/// (`host [address]`), `{client_name}`, `{client_addr}`, `{client_port}`, `{mail_addr}`,
/// `{mail_host}`, `{mail_mailer}`, `{rcpt_addr}`, `{rcpt_host}`, `{rcpt_mailer}` and
/// `{msg_id}` (the Message-ID header sent, else `<queue-id@hostname>`). Macros without a value
/// are left out of the packet.
#[derive(Debug)]
pub struct MilterClient<S> {
    pub(crate) io: Framed<S>,
    pub(crate) profile: Profile,
    pub(crate) negotiated: Option<Negotiated>,
    pub(crate) state: SessionState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MilterClient<S> {
    /// Wraps a connected stream to a filter.
    #[must_use]
    pub fn new(stream: S, profile: Profile) -> Self {
        Self {
            io: Framed::new(stream),
            profile,
            negotiated: None,
            state: SessionState::default(),
        }
    }

    /// The profile in use.
    #[must_use]
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Changes how long the client waits for each answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.profile.timeout = timeout;
    }

    /// The options agreed by [`negotiate`](Self::negotiate), once it succeeded.
    #[must_use]
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the session is over (QUIT sent, or ended by a connection-level verdict).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.state.closed
    }

    /// The stream, for callers that want to look at what follows; `None` once the session is
    /// over (the client drops the stream when it closes the connection).
    #[must_use]
    pub fn into_inner(self) -> Option<S> {
        self.io.stream
    }

    /// Sends the profile's OPTNEG offer and checks the reply (§3.1): version at most the
    /// offered one and at least 2, actions a subset of the offer, and with the Sendmail
    /// profile protocol flags a subset of the offer.
    pub async fn negotiate(&mut self) -> Result<Negotiated, ClientError> {
        let offer = self.profile.offer;
        let mut out = Vec::new();
        Command::OptNeg(offer).encode(&mut out)?;
        let limit = self.profile.timeout;
        self.io.write(&out, CommandKind::OptNeg, limit).await?;
        let frame = self
            .io
            .read_frame(CommandKind::OptNeg, Instant::now() + limit, limit)
            .await?;
        let Response::OptNeg(reply) = Response::decode_frame(&frame)? else {
            return Err(ClientError::UnexpectedResponse {
                command: CommandKind::OptNeg,
                response: frame.kind,
            });
        };
        let options = reply.options;
        if options.version > offer.version {
            return Err(NegotiationError::VersionTooHigh {
                offered: offer.version,
                replied: options.version,
            }
            .into());
        }
        if options.version < 2 {
            return Err(NegotiationError::VersionTooLow(options.version).into());
        }
        let extra = options.actions - offer.actions;
        if !extra.is_empty() {
            return Err(NegotiationError::ActionsNotOffered(extra).into());
        }
        let extra = options.protocol - offer.protocol;
        if self.profile.kind == MtaKind::Sendmail && !extra.is_empty() {
            return Err(NegotiationError::ProtocolNotOffered(extra).into());
        }
        let macro_requests = reply
            .macro_requests()
            .map(|(stage, names)| Ok((stage, utf8(names, "macro list")?)))
            .collect::<Result<Vec<_>, ClientError>>()?;
        self.io.check_drained()?;
        let negotiated = Negotiated {
            version: options.version,
            actions: options.actions,
            protocol: options.protocol,
            macro_requests,
        };
        self.negotiated = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// CONNECT: the SMTP client's host name, address family, port and address.
    ///
    /// With the Sendmail profile an IPv6 address is sent with the `IPv6:` prefix, and
    /// uncompressed unless [`Profile::compress_ipv6`] is set.
    pub async fn connect(
        &mut self,
        hostname: &str,
        family: Family,
        port: u16,
        address: &str,
    ) -> Result<Reply, ClientError> {
        let address = self.wire_address(family, address);
        self.state.client = Some((hostname.to_owned(), address.clone(), port));
        let command = Command::Connect(Connect {
            hostname: hostname.into(),
            family,
            port,
            address: address.as_str().into(),
        });
        self.step(&command).await
    }

    fn wire_address(&self, family: Family, address: &str) -> String {
        if family != Family::Inet6 {
            return address.to_owned();
        }
        let bare = match address.get(..5) {
            Some(head) if head.eq_ignore_ascii_case("IPv6:") => address.get(5..).unwrap_or(""),
            _ => address,
        };
        let text = match bare.parse::<Ipv6Addr>() {
            Ok(ip) if !self.profile.compress_ipv6 => ip
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
            _ => bare.to_owned(),
        };
        match self.profile.kind {
            MtaKind::Sendmail => format!("IPv6:{text}"),
            MtaKind::Postfix => text,
        }
    }

    /// HELO/EHLO with its argument.
    pub async fn helo(&mut self, name: &str) -> Result<Reply, ClientError> {
        if self.profile.kind == MtaKind::Sendmail && self.state.in_transaction {
            self.abort().await?;
        }
        let repeated = self.state.helo.is_some();
        self.state.helo = Some(name.to_owned());
        let reply = self.step(&Command::Helo(name.into())).await?;
        if repeated && self.profile.kind == MtaKind::Postfix && !self.state.closed {
            self.abort().await?;
        }
        Ok(reply)
    }

    /// MAIL FROM: the sender (normally with angle brackets) and its ESMTP parameters.
    pub async fn mail(&mut self, sender: &str, args: &[&str]) -> Result<Reply, ClientError> {
        if self.profile.kind == MtaKind::Sendmail && self.state.in_transaction {
            self.abort().await?;
        }
        self.state.in_transaction = true;
        self.state.queue_id_known = self.profile.queue_id_timing == QueueIdTiming::Mail;
        self.state.mail_addr = Some(sender.to_owned());
        self.state.rcpt_addr = None;
        self.state.msg_id = None;
        let args: Vec<WireStr<'_>> = args.iter().map(|a| WireStr::from(*a)).collect();
        self.step(&Command::Mail(EnvelopeCommand::new(sender.into(), &args)))
            .await
    }

    /// RCPT TO: one recipient and its ESMTP parameters.
    pub async fn rcpt(&mut self, rcpt: &str, args: &[&str]) -> Result<Reply, ClientError> {
        self.state.rcpt_addr = Some(rcpt.to_owned());
        let args: Vec<WireStr<'_>> = args.iter().map(|a| WireStr::from(*a)).collect();
        let reply = self
            .step(&Command::Rcpt(EnvelopeCommand::new(rcpt.into(), &args)))
            .await?;
        if !reply.is_refusal() {
            self.state.queue_id_known = true;
        }
        Ok(reply)
    }

    /// RCPT TO for a recipient the MTA rejected itself, sent the way Postfix and Sendmail
    /// send it to a filter that negotiated `RCPT_REJ` (§2.6): `{rcpt_mailer}` is `error`,
    /// `{rcpt_host}` the enhanced status code and `{rcpt_addr}` the text of `smtp_reply`
    /// (such as `"550 5.1.1 <x@example.com>: Recipient address rejected"`). Without
    /// `RCPT_REJ` nothing is sent ([`Reply::NotSent`]), as the MTAs do. The filter's answer
    /// changes nothing for the MTA, so it neither ends the transaction nor reveals the queue
    /// ID.
    pub async fn rcpt_rejected(
        &mut self,
        rcpt: &str,
        args: &[&str],
        smtp_reply: &str,
    ) -> Result<Reply, ClientError> {
        let negotiated = self.before_command()?;
        if !negotiated.protocol.contains(ProtocolFlags::RCPT_REJECTED) {
            return Ok(Reply::NotSent);
        }
        let rest = smtp_reply.get(4..).unwrap_or("");
        let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
        self.state.rcpt_addr = Some(rcpt.to_owned());
        self.state.rcpt_rejection = Some((status.to_owned(), text.to_owned()));
        let args: Vec<WireStr<'_>> = args.iter().map(|a| WireStr::from(*a)).collect();
        let reply = self
            .step(&Command::Rcpt(EnvelopeCommand::new(rcpt.into(), &args)))
            .await;
        self.state.rcpt_rejection = None;
        reply
    }

    /// DATA.
    pub async fn data(&mut self) -> Result<Reply, ClientError> {
        self.step(&Command::Data).await
    }

    /// One header field. `value` is everything after the colon as it stands in the message
    /// (folded lines joined with a bare LF); unless `HDR_LEADSPC` was negotiated exactly one
    /// leading space is removed before sending, as both MTAs do.
    pub async fn header(&mut self, name: &str, value: &str) -> Result<Reply, ClientError> {
        let leading_space = self
            .negotiated
            .as_ref()
            .is_some_and(Negotiated::leading_space);
        let field = DeliveredHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        if name.eq_ignore_ascii_case("Message-ID") {
            self.state.msg_id = Some(field.trimmed_value().trim_end().to_owned());
        }
        let command = Command::Header(Header {
            name: name.into(),
            value: field.wire_value(leading_space).into(),
        });
        self.step(&command).await
    }

    /// End of headers.
    pub async fn end_of_headers(&mut self) -> Result<Reply, ClientError> {
        self.step(&Command::EndOfHeaders).await
    }

    /// One body chunk of at most 65535 bytes, sent as is (the MTA sends CRLF line ends).
    pub async fn body(&mut self, chunk: &[u8]) -> Result<Reply, ClientError> {
        if chunk.len() > MAX_BODY_CHUNK {
            return Err(ClientError::ChunkTooLarge(chunk.len()));
        }
        self.step(&Command::Body(chunk)).await
    }

    /// End of message: collects the modifications and the final response.
    ///
    /// Refuses modifications whose action was not negotiated, REPLBODY runs interrupted by
    /// other modifications, SKIP, and (Sendmail) SHUTDOWN. PROGRESS restarts the wait.
    pub async fn end_of_message(&mut self) -> Result<EndOfMessage, ClientError> {
        let kind = CommandKind::EndOfMessage;
        self.before_command()?;
        let mut out = Vec::new();
        self.encode_macros(kind, &mut out)?;
        Command::EndOfMessage(&[]).encode(&mut out)?;
        self.write_command(&out, kind).await?;
        let result = self.read_end_of_message().await?;
        self.after_reply(kind, &result.reply).await?;
        Ok(result)
    }

    /// ABORT: ends the current transaction without a reply.
    pub async fn abort(&mut self) -> Result<(), ClientError> {
        self.before_command()?;
        let mut out = Vec::new();
        Command::Abort.encode(&mut out)?;
        self.write_command(&out, CommandKind::Abort).await?;
        self.state.in_transaction = false;
        Ok(())
    }

    /// An SMTP command the MTA does not know. Postfix sends only the command word, Sendmail
    /// the whole line.
    pub async fn unknown(&mut self, line: &str) -> Result<Reply, ClientError> {
        let payload = match self.profile.kind {
            MtaKind::Postfix => line.split_whitespace().next().unwrap_or(""),
            MtaKind::Sendmail => line,
        };
        self.step(&Command::Unknown(payload.into())).await
    }

    /// Ends the session the way the profile's MTA does: ABORT for an open transaction,
    /// with Postfix another ABORT if a HELO was seen, then QUIT, then closes the stream.
    /// Does nothing if the session is already over.
    pub async fn quit(&mut self) -> Result<(), ClientError> {
        if self.state.closed {
            return Ok(());
        }
        self.before_command()?;
        self.io.check_idle()?;
        let mut out = Vec::new();
        if self.state.in_transaction {
            Command::Abort.encode(&mut out)?;
        }
        if self.profile.kind == MtaKind::Postfix && self.state.helo.is_some() {
            Command::Abort.encode(&mut out)?;
        }
        Command::Quit.encode(&mut out)?;
        self.write_command(&out, CommandKind::Quit).await?;
        self.state.in_transaction = false;
        self.state.closed = true;
        self.io.close(self.profile.timeout).await;
        Ok(())
    }

    /// `QUIT_NC` (§2.14): ends this SMTP session but keeps the milter connection, so the
    /// next session starts with [`connect`](Self::connect) on the same stream, without a new
    /// OPTNEG: the negotiated options and macro requests still apply.
    ///
    /// Sends ABORT first for an open transaction, then `QUIT_NC`; there is no reply. The
    /// session state (HELO name, client, envelope, queue ID) is forgotten, as the filter
    /// forgets its macros.
    ///
    /// Neither Postfix 3.7 nor Sendmail 8.17 sends `QUIT_NC` (both open a new milter
    /// connection per SMTP session), so the profiles do not shape it; libmilter-based filters
    /// ignore it in most states (§2.14), so use it only with filters that support it. It
    /// exists from protocol version 6; the client sends it whatever version was negotiated.
    pub async fn quit_new_connection(&mut self) -> Result<(), ClientError> {
        self.before_command()?;
        self.io.check_idle()?;
        let mut out = Vec::new();
        if self.state.in_transaction {
            Command::Abort.encode(&mut out)?;
        }
        Command::QuitNewConnection.encode(&mut out)?;
        self.write_command(&out, CommandKind::QuitNewConnection)
            .await?;
        self.state = SessionState::default();
        Ok(())
    }

    // ===== internals =====

    fn before_command(&self) -> Result<&Negotiated, ClientError> {
        if self.state.closed {
            return Err(ClientError::SessionClosed);
        }
        self.negotiated.as_ref().ok_or(ClientError::NotNegotiated)
    }

    async fn write_command(&mut self, out: &[u8], kind: CommandKind) -> Result<(), ClientError> {
        if std::mem::take(&mut self.io.unanswered) {
            self.io.check_idle()?;
        }
        self.io.write(out, kind, self.profile.timeout).await
    }

    /// Sends `command` with its MACRO packet, honouring `NO_*` and `NR_*`, and reads the reply.
    async fn step(&mut self, command: &Command<'_>) -> Result<Reply, ClientError> {
        let kind = command.kind();
        let negotiated = self.before_command()?;
        let sends = negotiated.sends(kind);
        let expects_reply = negotiated.expects_reply(kind);
        let macros_anyway = match kind {
            CommandKind::Connect
            | CommandKind::Helo
            | CommandKind::Mail
            | CommandKind::Rcpt
            | CommandKind::Data => true,
            CommandKind::Unknown => self.profile.kind == MtaKind::Postfix,
            _ => false,
        };
        let mut out = Vec::new();
        if sends || macros_anyway {
            self.encode_macros(kind, &mut out)?;
        }
        if sends {
            command.encode(&mut out)?;
        }
        if !out.is_empty() {
            self.write_command(&out, kind).await?;
        }
        if !sends {
            return Ok(Reply::NotSent);
        }
        if !expects_reply {
            self.io.unanswered = true;
            return Ok(Reply::NoReply);
        }
        let reply = self.read_reply(kind).await?;
        self.after_reply(kind, &reply).await?;
        Ok(reply)
    }

    /// Session and transaction effects of a reply (see the type docs).
    async fn after_reply(&mut self, kind: CommandKind, reply: &Reply) -> Result<(), ClientError> {
        if kind == CommandKind::Rcpt && self.state.rcpt_rejection.is_some() {
            // The MTA ignores the answer for a recipient it rejected itself.
            return Ok(());
        }
        let connection_level = matches!(kind, CommandKind::Connect | CommandKind::Helo)
            && matches!(
                reply,
                Reply::Accept | Reply::Reject | Reply::Tempfail | Reply::ReplyCode(_)
            );
        if connection_level || *reply == Reply::Shutdown {
            if self.profile.kind == MtaKind::Sendmail {
                let mut out = Vec::new();
                Command::Quit.encode(&mut out)?;
                self.io
                    .write(&out, CommandKind::Quit, self.profile.timeout)
                    .await?;
            }
            self.state.closed = true;
            self.state.in_transaction = false;
            self.io.close(self.profile.timeout).await;
            return Ok(());
        }
        let ends_transaction = match kind {
            CommandKind::Mail => !reply.is_continue(),
            CommandKind::Rcpt => matches!(reply, Reply::Accept | Reply::Discard),
            CommandKind::Data
            | CommandKind::Header
            | CommandKind::EndOfHeaders
            | CommandKind::Body => !reply.is_continue() && *reply != Reply::Skip,
            CommandKind::EndOfMessage => true,
            _ => false,
        };
        if ends_transaction && self.state.in_transaction {
            self.state.in_transaction = false;
            if self.profile.kind == MtaKind::Postfix {
                self.abort().await?;
            }
        }
        Ok(())
    }

    async fn read_reply(&mut self, kind: CommandKind) -> Result<Reply, ClientError> {
        let limit = self.profile.timeout;
        let mut deadline = Instant::now() + limit;
        let skip_negotiated = self
            .negotiated
            .as_ref()
            .is_some_and(|n| n.protocol.contains(ProtocolFlags::SKIP));
        let postfix = self.profile.kind == MtaKind::Postfix;
        loop {
            let frame = self.io.read_frame(kind, deadline, limit).await?;
            let unexpected = ClientError::UnexpectedResponse {
                command: kind,
                response: frame.kind,
            };
            let reply = match Response::decode_frame(&frame)? {
                Response::Progress if postfix => {
                    deadline = Instant::now() + limit;
                    continue;
                }
                Response::Continue => Reply::Continue,
                Response::Accept => Reply::Accept,
                Response::Reject => Reply::Reject,
                Response::Tempfail => Reply::Tempfail,
                Response::Discard
                    if !matches!(
                        kind,
                        CommandKind::Connect | CommandKind::Helo | CommandKind::Unknown
                    ) =>
                {
                    Reply::Discard
                }
                Response::Skip if kind == CommandKind::Body && skip_negotiated => Reply::Skip,
                Response::Shutdown if postfix => Reply::Shutdown,
                Response::ReplyCode(text) => Reply::ReplyCode(reply_code(text)?),
                _ => return Err(unexpected),
            };
            self.io.check_drained()?;
            return Ok(reply);
        }
    }

    async fn read_end_of_message(&mut self) -> Result<EndOfMessage, ClientError> {
        let kind = CommandKind::EndOfMessage;
        let limit = self.profile.timeout;
        let mut deadline = Instant::now() + limit;
        let actions = self
            .negotiated
            .as_ref()
            .map_or(Actions::EMPTY, |n| n.actions);
        let postfix = self.profile.kind == MtaKind::Postfix;
        let mut modifications: Vec<Modification> = Vec::new();
        let mut progress = 0;
        // None: no REPLBODY yet; Some(true): inside the run; Some(false): run ended.
        let mut body_run: Option<bool> = None;
        loop {
            let frame = self.io.read_frame(kind, deadline, limit).await?;
            let response = Response::decode_frame(&frame)?;
            let modification = match response {
                Response::Progress => {
                    progress += 1;
                    deadline = Instant::now() + limit;
                    continue;
                }
                Response::ReplaceBody(bytes) => {
                    check_action(actions, Actions::CHANGE_BODY, frame.kind)?;
                    match (body_run, modifications.last_mut()) {
                        (Some(true), Some(Modification::ReplaceBody(body))) => {
                            body.extend_from_slice(bytes);
                            continue;
                        }
                        (None, _) => {
                            body_run = Some(true);
                            Modification::ReplaceBody(bytes.to_vec())
                        }
                        _ => return Err(ClientError::SplitBodyReplacement),
                    }
                }
                response if response.kind().is_final() => {
                    let reply = match response {
                        Response::Continue => Reply::Continue,
                        Response::Accept => Reply::Accept,
                        Response::Reject => Reply::Reject,
                        Response::Tempfail => Reply::Tempfail,
                        Response::Discard => Reply::Discard,
                        Response::Shutdown if postfix => Reply::Shutdown,
                        Response::ReplyCode(text) => Reply::ReplyCode(reply_code(text)?),
                        _ => {
                            return Err(ClientError::UnexpectedResponse {
                                command: kind,
                                response: frame.kind,
                            });
                        }
                    };
                    self.io.check_drained()?;
                    return Ok(EndOfMessage {
                        modifications,
                        reply,
                        progress,
                    });
                }
                other => modification(&other)?,
            };
            check_action(actions, modification.required_action(), frame.kind)?;
            if body_run == Some(true) && !matches!(modification, Modification::ReplaceBody(_)) {
                body_run = Some(false);
            }
            modifications.push(modification);
        }
    }

    /// Appends the MACRO packet for `command`, if the profile sends one.
    fn encode_macros(&self, command: CommandKind, out: &mut Vec<u8>) -> Result<(), ClientError> {
        let requests = self
            .negotiated
            .as_ref()
            .map_or(&[][..], |n| n.macro_requests.as_slice());
        let Some(names) = self.profile.macro_names(command, requests) else {
            return Ok(());
        };
        let values: Vec<(String, String)> = names
            .into_iter()
            .filter_map(|name| {
                let value = self.macro_value(&name)?;
                Some((name, value))
            })
            .collect();
        let pairs: Vec<(WireStr<'_>, WireStr<'_>)> = values
            .iter()
            .map(|(n, v)| (n.as_str().into(), v.as_str().into()))
            .collect();
        Command::Macro(Macros::new(command.into(), &pairs)).encode(out)?;
        Ok(())
    }

    /// The value of macro `name` now, if it has one.
    pub(crate) fn macro_value(&self, name: &str) -> Option<String> {
        let bare = name
            .strip_prefix('{')
            .and_then(|n| n.strip_suffix('}'))
            .unwrap_or(name);
        let fixed = self
            .profile
            .macro_values
            .get(name)
            .or_else(|| self.profile.macro_values.get(bare))
            .or_else(|| self.profile.macro_values.get(&format!("{{{bare}}}")));
        if let Some(value) = fixed {
            return Some(value.clone());
        }
        let state = &self.state;
        if let Some((status, text)) = &state.rcpt_rejection {
            match bare {
                "rcpt_mailer" => return Some("error".to_owned()),
                "rcpt_host" => return Some(status.clone()),
                "rcpt_addr" => return Some(text.clone()),
                _ => {}
            }
        }
        let mailer = match self.profile.kind {
            MtaKind::Postfix => "smtp",
            MtaKind::Sendmail => "esmtp",
        };
        let address = |a: &Option<String>| a.as_deref().map(strip_brackets);
        let host = |a: &Option<String>| {
            a.as_deref()
                .map(strip_brackets)
                .and_then(|a| a.rsplit_once('@').map(|(_, domain)| domain.to_owned()))
        };
        match bare {
            "i" => state.queue_id_known.then(|| self.profile.queue_id.clone()),
            "j" => Some(self.profile.hostname.clone()),
            "_" => state
                .client
                .as_ref()
                .map(|(host, addr, _)| format!("{host} [{addr}]")),
            "client_name" => state.client.as_ref().map(|(host, _, _)| host.clone()),
            "client_addr" => state.client.as_ref().map(|(_, addr, _)| addr.clone()),
            "client_port" => state.client.as_ref().map(|(_, _, port)| port.to_string()),
            "mail_addr" => address(&state.mail_addr),
            "mail_host" => host(&state.mail_addr),
            "mail_mailer" => state.mail_addr.as_ref().map(|_| mailer.to_owned()),
            "rcpt_addr" => address(&state.rcpt_addr),
            "rcpt_host" => host(&state.rcpt_addr),
            "rcpt_mailer" => state.rcpt_addr.as_ref().map(|_| mailer.to_owned()),
            "msg_id" => Some(state.msg_id.clone().unwrap_or_else(|| {
                format!("<{}@{}>", self.profile.queue_id, self.profile.hostname)
            })),
            _ => None,
        }
    }
}

fn strip_brackets(address: &str) -> String {
    address
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(address)
        .to_owned()
}

fn utf8(value: WireStr<'_>, field: &'static str) -> Result<String, ClientError> {
    value
        .to_str()
        .map(str::to_owned)
        .map_err(|_| ClientError::InvalidUtf8 { field })
}

fn check_action(negotiated: Actions, needs: Actions, response: u8) -> Result<(), ClientError> {
    if negotiated.contains(needs) {
        Ok(())
    } else {
        Err(ClientError::ActionNotNegotiated { response, needs })
    }
}

/// Checks a REPLYCODE the way Postfix 3.7 does (first line: `[45]DD` then space, `-` or end).
fn reply_code(text: WireStr<'_>) -> Result<String, ClientError> {
    let text = utf8(text, "reply code")?;
    let bytes = text.as_bytes();
    let valid = matches!(bytes.first(), Some(b'4' | b'5'))
        && bytes
            .get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && matches!(bytes.get(3), None | Some(b' ' | b'-'));
    if valid {
        Ok(text)
    } else {
        Err(ClientError::InvalidReplyCode(text))
    }
}

/// Converts a modification response into its owned form.
fn modification(response: &Response<'_>) -> Result<Modification, ClientError> {
    let s = |value: &WireStr<'_>, field| utf8(*value, field);
    let opt = |value: &Option<WireStr<'_>>| value.as_ref().map(|v| s(v, "arguments")).transpose();
    Ok(match response {
        Response::AddHeader { name, value } => Modification::AddHeader {
            name: s(name, "header name")?,
            value: s(value, "header value")?,
        },
        Response::InsertHeader { index, name, value } => Modification::InsertHeader {
            index: *index,
            name: s(name, "header name")?,
            value: s(value, "header value")?,
        },
        Response::ChangeHeader { index, name, value } => Modification::ChangeHeader {
            index: *index,
            name: s(name, "header name")?,
            value: s(value, "header value")?,
        },
        Response::AddRcpt(rcpt) => Modification::AddRcpt(s(rcpt, "recipient")?),
        Response::AddRcptWithArgs { rcpt, args } => Modification::AddRcptWithArgs {
            rcpt: s(rcpt, "recipient")?,
            args: opt(args)?,
        },
        Response::DeleteRcpt(rcpt) => Modification::DeleteRcpt(s(rcpt, "recipient")?),
        Response::ChangeFrom { sender, args } => Modification::ChangeFrom {
            sender: s(sender, "sender")?,
            args: opt(args)?,
        },
        Response::Quarantine(reason) => Modification::Quarantine(s(reason, "quarantine reason")?),
        Response::ReplaceBody(bytes) => Modification::ReplaceBody(bytes.to_vec()),
        other => {
            return Err(ClientError::UnexpectedResponse {
                command: CommandKind::EndOfMessage,
                response: u8::from(other.kind()),
            });
        }
    })
}
