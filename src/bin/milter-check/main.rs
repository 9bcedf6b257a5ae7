//! `milter-check`: plays a message through a running milter the way Postfix or Sendmail
//! would, and shows what was negotiated, every reply, every modification and the message as
//! the MTA would deliver it. Built on [`async_milter::client`]; needs the `cli` feature:
//!
//! ```text
//! cargo install async-milter --features cli --bin milter-check
//! milter-check inet:7357@127.0.0.1 message.eml
//! ```
//!
//! Exit status ([`ExitStatus`]): 0 accepted, 1 a local failure (the message file cannot be
//! read), 2 usage error, 3 rejected, 4 tempfailed, 5 discarded, 6 the filter broke the
//! protocol (including timeouts), 7 the filter cannot be reached.

mod load;
mod report;

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use async_milter::client::{
    ClientError, Envelope, MilterClient, MilterStream, Negotiated, Outcome, Profile, Reply, connect,
};
use async_milter::proto::Family;
use clap::{Parser, ValueEnum};

/// Plays a message through a running milter as Postfix or Sendmail would.
///
/// Prints what was negotiated, the filter's reply at every stage, every modification, and
/// the message as the MTA would deliver it.
///
/// Exit status: 0 accepted (also: accepted and quarantined), 1 local failure (message
/// unreadable), 2 usage error, 3 rejected, 4 tempfailed, 5 discarded, 6 protocol error (the
/// filter sent something an MTA refuses, closed the connection or timed out), 7 connection
/// failure (the socket cannot be reached). In load mode: 0 if every message completed, else
/// 6 or 7 for the first kind of error seen.
#[derive(Debug, Parser)]
#[command(name = "milter-check", version)]
pub(crate) struct Args {
    /// The filter's socket: `inet:PORT@HOST`, `inet6:PORT@HOST`, `unix:/path` or `HOST:PORT`.
    pub(crate) socket: String,
    /// The message (RFC 5322, CRLF or LF line ends); standard input when omitted.
    pub(crate) message: Option<PathBuf>,
    /// Which MTA to behave like: its macros per stage, ABORT habits and header handling.
    #[arg(long, value_enum, default_value_t = Mta::Postfix)]
    pub(crate) mta: Mta,
    /// The SMTP client's address sent at CONNECT (IPv4 or IPv6).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) client_addr: IpAddr,
    /// The SMTP client's port sent at CONNECT.
    #[arg(long, default_value_t = 50000)]
    pub(crate) client_port: u16,
    /// The SMTP client's host name sent at CONNECT.
    #[arg(long, default_value = "localhost")]
    pub(crate) client_name: String,
    /// The HELO/EHLO name (default: the client name).
    #[arg(long)]
    pub(crate) helo: Option<String>,
    /// The envelope sender (default: the message's From:).
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) from: Option<String>,
    /// An envelope recipient; repeat for more (default: the message's To: and Cc:).
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) rcpt: Vec<String>,
    /// A macro value, such as `{auth_authen}=alice` or `j=mx.example.com`; repeatable. Sent
    /// wherever the MTA's macro lists or the filter's request name it; a name in neither is
    /// sent with CONNECT.
    #[arg(long = "macro", value_name = "NAME=VALUE", value_parser = parse_macro)]
    pub(crate) macros: Vec<(String, String)>,
    /// How long to wait for each answer, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub(crate) timeout: f64,
    /// Show a unified diff of the delivered message against the input instead of the whole
    /// delivered message.
    #[arg(long)]
    pub(crate) diff: bool,
    /// Print one JSON object for scripts instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Load mode: play the message this many times (each on a connection of its own) and
    /// report messages per second and latency percentiles per stage.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Load mode: how many connections run at once.
    #[arg(long, value_name = "C", default_value_t = 1, requires = "count")]
    pub(crate) concurrency: u64,
}

/// The MTA whose behaviour is reproduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mta {
    /// Postfix 3.7.
    Postfix,
    /// Sendmail 8.17.
    Sendmail,
}

/// The documented exit statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Accepted = 0,
    LocalFailure = 1,
    Rejected = 3,
    Tempfailed = 4,
    Discarded = 5,
    ProtocolError = 6,
    ConnectionFailure = 7,
}

impl ExitStatus {
    /// The word used in the text and JSON output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::LocalFailure => "local failure",
            Self::Rejected => "rejected",
            Self::Tempfailed => "tempfailed",
            Self::Discarded => "discarded",
            Self::ProtocolError => "protocol error",
            Self::ConnectionFailure => "connection failure",
        }
    }

    /// What a verdict means for the message.
    pub(crate) fn of_verdict(reply: &Reply) -> Self {
        match reply {
            Reply::Reject => Self::Rejected,
            Reply::Tempfail | Reply::Shutdown => Self::Tempfailed,
            Reply::ReplyCode(text) => {
                if text.starts_with('4') {
                    Self::Tempfailed
                } else {
                    Self::Rejected
                }
            }
            Reply::Discard => Self::Discarded,
            _ => Self::Accepted,
        }
    }

    /// What a client error means: the filter could not be reached, or it misbehaved.
    pub(crate) fn of_error(error: &ClientError) -> Self {
        match error {
            ClientError::Io(_) | ClientError::InvalidSpec(_) | ClientError::ConnectTimeout(_) => {
                Self::ConnectionFailure
            }
            _ => Self::ProtocolError,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        Self::from(status as u8)
    }
}

fn parse_macro(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err("the macro name is empty".to_owned());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// The profile the arguments ask for.
pub(crate) fn profile(args: &Args) -> Profile {
    let mut profile = match args.mta {
        Mta::Postfix => Profile::postfix(),
        Mta::Sendmail => Profile::sendmail(),
    };
    profile.timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    for (name, value) in &args.macros {
        let bare = name.trim_start_matches('{').trim_end_matches('}');
        let wire = if bare.len() == 1 {
            bare.to_owned()
        } else {
            format!("{{{bare}}}")
        };
        let listed = profile
            .macro_lists
            .iter()
            .any(|(_, names)| names.contains(&wire));
        if !listed {
            if let Some((_, names)) = profile
                .macro_lists
                .iter_mut()
                .find(|(command, _)| *command == async_milter::proto::CommandKind::Connect)
            {
                names.push(wire.clone());
            }
        }
        profile = profile.with_macro(&wire, value);
    }
    profile
}

/// The envelope: the arguments, else the message's own headers.
pub(crate) fn envelope(args: &Args, message: &[u8]) -> Envelope {
    let mut envelope = Envelope::from_message(message);
    if let Some(from) = &args.from {
        envelope.from = bracketed(from);
    }
    if !args.rcpt.is_empty() {
        envelope.rcpts = args
            .rcpt
            .iter()
            .map(|r| (bracketed(r), Vec::new()))
            .collect();
    }
    envelope
}

fn bracketed(address: &str) -> String {
    if address.starts_with('<') {
        address.to_owned()
    } else {
        format!("<{address}>")
    }
}

/// What one session produced, as far as it got.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) negotiated: Option<Negotiated>,
    /// CONNECT and HELO: the stage name, its argument and the reply.
    pub(crate) session: Vec<(&'static str, String, Reply)>,
    /// The transaction, if CONNECT and HELO let it start.
    pub(crate) outcome: Option<Outcome>,
    /// The verdict: the transaction's, or a connection-level one from CONNECT or HELO.
    pub(crate) verdict: Option<Reply>,
    /// Time per stage, for the load mode.
    pub(crate) timings: Vec<(&'static str, Duration)>,
}

/// Runs one SMTP session with one message through the filter. On an error, `run` keeps what
/// happened before it.
pub(crate) async fn play(
    args: &Args,
    profile: Profile,
    envelope: &Envelope,
    message: &[u8],
    run: &mut Run,
) -> Result<(), ClientError> {
    let mut clock = Clock::start();
    let mut client = connect(&args.socket, profile).await?;
    run.timings.push(("connect", clock.lap()));
    run.negotiated = Some(client.negotiate().await?);
    run.timings.push(("negotiate", clock.lap()));
    let family = match args.client_addr {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    };
    let address = args.client_addr.to_string();
    let reply = client
        .connect(&args.client_name, family, args.client_port, &address)
        .await?;
    run.timings.push(("CONNECT", clock.lap()));
    run.session.push((
        "connect",
        format!("{} [{address}]", args.client_name),
        reply.clone(),
    ));
    if session_over(&client, &reply) {
        run.verdict = Some(reply);
        return client.quit().await;
    }
    let helo = args.helo.as_deref().unwrap_or(&args.client_name);
    let reply = client.helo(helo).await?;
    run.timings.push(("HELO", clock.lap()));
    run.session.push(("helo", helo.to_owned(), reply.clone()));
    if session_over(&client, &reply) {
        run.verdict = Some(reply);
        return client.quit().await;
    }
    let outcome = client.send_message(envelope, message).await?;
    run.timings.push(("message", clock.lap()));
    run.verdict = Some(outcome.verdict.clone());
    run.outcome = Some(outcome);
    client.quit().await?;
    run.timings.push(("QUIT", clock.lap()));
    Ok(())
}

/// Whether a reply at CONNECT or HELO ended the session (a connection-level verdict).
fn session_over(client: &MilterClient<MilterStream>, reply: &Reply) -> bool {
    client.is_closed() || !reply.is_continue()
}

/// Lap times.
struct Clock(std::time::Instant);

impl Clock {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn lap(&mut self) -> Duration {
        let now = std::time::Instant::now();
        let lap = now - self.0;
        self.0 = now;
        lap
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let message = match read_message(args.message.as_ref()) {
        Ok(message) => message,
        Err(error) => {
            let what = args
                .message
                .as_ref()
                .map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
            eprintln!("milter-check: cannot read {what}: {error}");
            return ExitStatus::LocalFailure.into();
        }
    };
    let envelope = envelope(&args, &message);
    let profile = profile(&args);
    if args.count.is_some() {
        return load::run(&args, &profile, &envelope, &message).into();
    }
    let mut run = Run::default();
    let result = async_std::task::block_on(play(&args, profile, &envelope, &message, &mut run));
    report::print(&args, &envelope, &message, &run, result.as_ref().err()).into()
}

fn read_message(path: Option<&PathBuf>) -> std::io::Result<Vec<u8>> {
    if let Some(path) = path {
        return std::fs::read(path);
    }
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    Ok(message)
}
