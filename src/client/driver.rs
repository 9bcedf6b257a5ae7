//! The whole-message driver: one SMTP transaction from MAIL to end of message.

use futures::io::{AsyncRead, AsyncWrite};

use super::connection::MilterClient;
use super::delivery::{Delivered, DeliveredRecipient, Editor};
use super::error::ClientError;
use super::message::{DeliveredHeader, Envelope, parse_message};
use super::reply::{EndOfMessage, Modification, Negotiated, Reply};
use crate::proto::MAX_BODY_CHUNK;

/// Everything that happened in one [`MilterClient::send_message`] transaction.
///
/// Stages the transaction never reached hold `None` or an empty list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The answer to MAIL.
    pub mail: Reply,
    /// Each recipient with the answer to its RCPT ([`Reply::NotSent`] for recipients after
    /// the filter accepted the message at RCPT).
    pub rcpts: Vec<(String, Reply)>,
    /// The answer to DATA.
    pub data: Option<Reply>,
    /// The answer to each HEADER, in order.
    pub headers: Vec<Reply>,
    /// The answer to end of headers.
    pub end_of_headers: Option<Reply>,
    /// The answer to each BODY chunk, in order.
    pub body: Vec<Reply>,
    /// The complete answer to end of message.
    pub end_of_message: Option<EndOfMessage>,
    /// The modifications from end of message (empty if it was not reached).
    pub modifications: Vec<Modification>,
    /// The message-level verdict: the answer that ended the filter's part in the message.
    /// [`Reply::Continue`] at end of message means accept. When every recipient was refused,
    /// the answer to the last RCPT ([`Reply::Reject`] if there were none).
    pub verdict: Reply,
    /// The message as the MTA would deliver it, or `None` if it was rejected, tempfailed,
    /// discarded or had no accepted recipient.
    pub delivered: Option<Delivered>,
    /// The quarantine reason, if the delivered message was quarantined (held).
    pub quarantined: Option<String>,
}

impl Outcome {
    fn new(mail: Reply) -> Self {
        Self {
            mail,
            rcpts: Vec::new(),
            data: None,
            headers: Vec::new(),
            end_of_headers: None,
            body: Vec::new(),
            end_of_message: None,
            modifications: Vec::new(),
            verdict: Reply::Continue,
            delivered: None,
            quarantined: None,
        }
    }
}

/// Whether a reply before end of message ends the filter's part in the message.
fn ends_message(reply: &Reply) -> bool {
    !reply.is_continue() && *reply != Reply::Skip
}

impl<S: AsyncRead + AsyncWrite + Unpin> MilterClient<S> {
    /// Runs one transaction the way the profile's MTA would: MAIL, each RCPT, DATA, the
    /// headers of `message`, end of headers, the body in chunks, end of message, and the
    /// profile's trailing ABORT.
    ///
    /// `message` is RFC 5322 text with CRLF or LF line ends. Header values are sent as
    /// [`MilterClient::header`] describes; folded lines are joined with a bare LF plus their own
    /// leading whitespace. The body is sent with CRLF line ends in chunks of
    /// [`Profile::body_chunk_size`](super::Profile::body_chunk_size) bytes (at most 65535),
    /// and not at all if it is empty; after SKIP no more chunks are sent.
    ///
    /// A refused recipient is dropped from the delivery set; if none is left the transaction
    /// is aborted. A message-level verdict before end of message (ACCEPT, REJECT, TEMPFAIL,
    /// a reply code or DISCARD at MAIL, DATA, a header, end of headers or a body chunk;
    /// ACCEPT or DISCARD at RCPT) stops the transaction. ACCEPT delivers the message
    /// unmodified; the others deliver nothing. At end of message the modifications are
    /// applied (see the module docs) when the verdict is CONTINUE or ACCEPT.
    pub async fn send_message(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Outcome, ClientError> {
        let parsed = parse_message(message);
        let from_args: Vec<&str> = envelope.from_args.iter().map(String::as_str).collect();
        let mail = self.mail(&envelope.from, &from_args).await?;
        let mut outcome = Outcome::new(mail.clone());
        let mut delivered = Delivered {
            sender: envelope.from.clone(),
            sender_args: envelope.from_args.clone(),
            recipients: Vec::new(),
            headers: parsed.headers.clone(),
            body: parsed.body.clone(),
        };
        let all_recipients = || {
            envelope
                .rcpts
                .iter()
                .map(|(address, args)| DeliveredRecipient {
                    address: address.clone(),
                    args: args.clone(),
                })
                .collect()
        };
        if ends_message(&mail) {
            outcome.verdict = mail;
            if outcome.verdict == Reply::Accept {
                delivered.recipients = all_recipients();
                outcome.delivered = Some(self.unmodified(delivered));
            }
            return Ok(outcome);
        }

        if let Some(early) = self
            .send_rcpts(envelope, &mut outcome, &mut delivered)
            .await?
        {
            outcome.verdict = early;
            if outcome.verdict == Reply::Accept {
                outcome.delivered = Some(self.unmodified(delivered));
            }
            return Ok(outcome);
        }

        let data = self.data().await?;
        outcome.data = Some(data.clone());
        if ends_message(&data) {
            return Ok(self.early_verdict(outcome, data, delivered));
        }
        for header in &parsed.headers {
            let reply = self.header(&header.name, &header.value).await?;
            outcome.headers.push(reply.clone());
            if ends_message(&reply) {
                return Ok(self.early_verdict(outcome, reply, delivered));
            }
        }
        let eoh = self.end_of_headers().await?;
        outcome.end_of_headers = Some(eoh.clone());
        if ends_message(&eoh) {
            return Ok(self.early_verdict(outcome, eoh, delivered));
        }
        let chunk_size = self.profile.body_chunk_size.clamp(1, MAX_BODY_CHUNK);
        for chunk in parsed.body.chunks(chunk_size) {
            let reply = self.body(chunk).await?;
            outcome.body.push(reply.clone());
            if reply == Reply::Skip {
                break;
            }
            if ends_message(&reply) {
                return Ok(self.early_verdict(outcome, reply, delivered));
            }
        }

        let eom = self.end_of_message().await?;
        outcome.verdict = eom.reply.clone();
        outcome.modifications.clone_from(&eom.modifications);
        if matches!(eom.reply, Reply::Continue | Reply::Accept) {
            let mut editor = self.editor(delivered);
            for modification in &eom.modifications {
                editor.apply(modification);
            }
            outcome.delivered = Some(editor.finish());
            outcome.quarantined = eom.modifications.iter().rev().find_map(|m| match m {
                Modification::Quarantine(reason) => Some(reason.clone()),
                _ => None,
            });
        }
        outcome.end_of_message = Some(eom);
        Ok(outcome)
    }

    /// Sends each RCPT, filling `outcome.rcpts` and the delivery set. Returns the verdict if
    /// the transaction ends here: ACCEPT (the filter is done; every later recipient is
    /// delivered without being shown to it), DISCARD, or the last refusal when no recipient is
    /// left (the transaction is then aborted).
    async fn send_rcpts(
        &mut self,
        envelope: &Envelope,
        outcome: &mut Outcome,
        delivered: &mut Delivered,
    ) -> Result<Option<Reply>, ClientError> {
        let mut filter_done = false;
        for (address, args) in &envelope.rcpts {
            if filter_done {
                outcome.rcpts.push((address.clone(), Reply::NotSent));
                delivered.recipients.push(DeliveredRecipient {
                    address: address.clone(),
                    args: args.clone(),
                });
                continue;
            }
            let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let reply = self.rcpt(address, &arg_refs).await?;
            outcome.rcpts.push((address.clone(), reply.clone()));
            match reply {
                Reply::Discard => return Ok(Some(Reply::Discard)),
                Reply::Accept => filter_done = true,
                ref refused if refused.is_refusal() => continue,
                _ => {}
            }
            delivered.recipients.push(DeliveredRecipient {
                address: address.clone(),
                args: args.clone(),
            });
        }
        if filter_done {
            return Ok(Some(Reply::Accept));
        }
        if delivered.recipients.is_empty() {
            if self.state.in_transaction {
                self.abort().await?;
            }
            let last = outcome
                .rcpts
                .last()
                .map_or(Reply::Reject, |(_, r)| r.clone());
            return Ok(Some(last));
        }
        Ok(None)
    }

    fn early_verdict(&self, mut outcome: Outcome, reply: Reply, delivered: Delivered) -> Outcome {
        if reply == Reply::Accept {
            outcome.delivered = Some(self.unmodified(delivered));
        }
        outcome.verdict = reply;
        outcome
    }

    fn unmodified(&self, delivered: Delivered) -> Delivered {
        self.editor(delivered).finish()
    }

    fn editor(&self, delivered: Delivered) -> Editor {
        let leading_space = self
            .negotiated
            .as_ref()
            .is_some_and(Negotiated::leading_space);
        let hidden = self.profile.hidden_received.then(|| self.received_header());
        Editor::new(self.profile.kind, leading_space, hidden, delivered)
    }

    /// The MTA's own `Received:` header, which the filter never sees.
    fn received_header(&self) -> DeliveredHeader {
        let helo = self.state.helo.as_deref().unwrap_or("localhost");
        let (host, addr) = self
            .state
            .client
            .as_ref()
            .map_or(("localhost", "127.0.0.1"), |(h, a, _)| {
                (h.as_str(), a.as_str())
            });
        DeliveredHeader {
            name: "Received".to_owned(),
            value: format!(
                " from {helo} ({host} [{addr}])\n\tby {} (Postfix) with ESMTP id {}",
                self.profile.hostname, self.profile.queue_id
            ),
        }
    }
}
