//! The report of one run: readable text, or one JSON object with `--json`.

use std::fmt::Write as _;

use async_milter::client::{ClientError, Delivered, Envelope, Modification, Negotiated, Reply};
use serde_json::{Value, json};

use crate::{Args, ExitStatus, Mta, Run};

/// Prints the report and returns the exit status.
pub(crate) fn print(
    args: &Args,
    envelope: &Envelope,
    message: &[u8],
    run: &Run,
    error: Option<&ClientError>,
) -> ExitStatus {
    let status = match (error, &run.verdict) {
        (Some(error), _) => ExitStatus::of_error(error),
        (None, Some(verdict)) => ExitStatus::of_verdict(verdict),
        (None, None) => ExitStatus::ProtocolError,
    };
    let stages = stages(run, envelope, message);
    let delivered = run.outcome.as_ref().and_then(|o| o.delivered.as_ref());
    if args.json {
        print_json(args, envelope, message, run, &stages, status, error);
        return status;
    }

    let mut out = String::new();
    let _ = writeln!(out, "socket      {} ({:?} profile)", args.socket, args.mta);
    let _ = writeln!(
        out,
        "envelope    from {} to {}",
        envelope.from,
        envelope
            .rcpts
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(negotiated) = &run.negotiated {
        write_negotiated(&mut out, negotiated);
    }
    if !stages.is_empty() {
        let _ = writeln!(out, "\nreplies");
    }
    for (stage, arg, reply) in &stages {
        let _ = writeln!(
            out,
            "  {:<28} {}",
            format!("{stage} {arg}"),
            reply_text(reply)
        );
    }
    if let Some(outcome) = &run.outcome {
        if !outcome.modifications.is_empty() {
            let _ = writeln!(out, "\nmodifications");
            for modification in &outcome.modifications {
                let _ = writeln!(out, "  {}", modification_text(modification));
            }
        }
    }
    let _ = write!(out, "\nresult      {}", status.name());
    if let Some(verdict) = &run.verdict {
        let _ = write!(out, " ({})", reply_text(verdict));
    }
    if let Some(reason) = run.outcome.as_ref().and_then(|o| o.quarantined.as_ref()) {
        let _ = write!(out, ", quarantined: {reason}");
    }
    out.push('\n');
    if let Some(delivered) = delivered {
        let recipients = delivered.recipient_addresses().join(", ");
        let _ = writeln!(
            out,
            "\ndelivered   from {} to {recipients}",
            delivered.sender
        );
        if args.diff {
            out.push_str(&diff(message, delivered));
        } else {
            out.push('\n');
            out.push_str(&lf(&delivered.to_bytes()));
        }
    }
    print!("{out}");
    if let Some(error) = error {
        eprintln!("milter-check: {}", error_text(error));
    }
    status
}

/// The report as one JSON object.
fn print_json(
    args: &Args,
    envelope: &Envelope,
    message: &[u8],
    run: &Run,
    stages: &[(String, String, Reply)],
    status: ExitStatus,
    error: Option<&ClientError>,
) {
    let delivered = run.outcome.as_ref().and_then(|o| o.delivered.as_ref());
    let value = json!({
        "socket": args.socket,
        "mta": match args.mta { Mta::Postfix => "postfix", Mta::Sendmail => "sendmail" },
        "envelope": {
            "from": envelope.from,
            "rcpts": envelope.rcpts.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        },
        "negotiated": run.negotiated.as_ref().map(negotiated_json),
        "stages": stages.iter().map(|(stage, arg, reply)| {
            let mut object = json!({ "stage": stage, "reply": reply_name(reply) });
            if !arg.is_empty() {
                object["arg"] = json!(arg);
            }
            if let Reply::ReplyCode(text) = reply {
                object["text"] = json!(text);
            }
            object
        }).collect::<Vec<_>>(),
        "modifications": run.outcome.as_ref().map_or_else(Vec::new, |o| {
            o.modifications.iter().map(modification_json).collect()
        }),
        "verdict": run.verdict.as_ref().map(reply_name),
        "reply_text": match &run.verdict { Some(Reply::ReplyCode(t)) => Some(t), _ => None },
        "quarantined": run.outcome.as_ref().and_then(|o| o.quarantined.as_ref()),
        "delivered": delivered.map(|d| delivered_json(d, message, args.diff)),
        "outcome": status.name(),
        "exit_code": status as u8,
        "error": error.map(error_text),
    });
    println!("{value:#}");
}

/// Every stage with its argument and reply, in order.
fn stages(run: &Run, envelope: &Envelope, message: &[u8]) -> Vec<(String, String, Reply)> {
    let mut stages: Vec<(String, String, Reply)> = run
        .session
        .iter()
        .map(|(stage, arg, reply)| ((*stage).to_owned(), arg.clone(), reply.clone()))
        .collect();
    let Some(outcome) = &run.outcome else {
        return stages;
    };
    stages.push(("mail".into(), envelope.from.clone(), outcome.mail.clone()));
    for (rcpt, reply) in &outcome.rcpts {
        stages.push(("rcpt".into(), rcpt.clone(), reply.clone()));
    }
    if let Some(reply) = &outcome.data {
        stages.push(("data".into(), String::new(), reply.clone()));
    }
    let names = header_names(message);
    for (at, reply) in outcome.headers.iter().enumerate() {
        let name = names.get(at).cloned().unwrap_or_default();
        stages.push(("header".into(), name, reply.clone()));
    }
    if let Some(reply) = &outcome.end_of_headers {
        stages.push(("eoh".into(), String::new(), reply.clone()));
    }
    for (at, reply) in outcome.body.iter().enumerate() {
        stages.push(("body".into(), format!("chunk {}", at + 1), reply.clone()));
    }
    if let Some(eom) = &outcome.end_of_message {
        stages.push(("eom".into(), String::new(), eom.reply.clone()));
    }
    stages
}

/// The header names of `message`, in order, as the client splits it (a line with a colon
/// after a printable name; continuation lines skipped; the first other line ends them).
fn header_names(message: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in message.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            break;
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
            break;
        }
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    names
}

fn write_negotiated(out: &mut String, negotiated: &Negotiated) {
    let _ = writeln!(out, "negotiated  version {}", negotiated.version);
    let _ = writeln!(
        out,
        "  actions   {}",
        flag_names(&format!("{:?}", negotiated.actions)).join(" ")
    );
    let _ = writeln!(
        out,
        "  protocol  {}",
        flag_names(&format!("{:?}", negotiated.protocol)).join(" ")
    );
    for (stage, names) in &negotiated.macro_requests {
        let _ = writeln!(out, "  macros    {stage:?}: {names}");
    }
}

fn negotiated_json(negotiated: &Negotiated) -> Value {
    json!({
        "version": negotiated.version,
        "actions": flag_names(&format!("{:?}", negotiated.actions)),
        "protocol": flag_names(&format!("{:?}", negotiated.protocol)),
        "macro_requests": negotiated.macro_requests.iter()
            .map(|(stage, names)| (format!("{stage:?}"), Value::from(names.as_str())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// The flag names out of a flag set's Debug form (`Actions(ADD_HEADERS | QUARANTINE)`).
fn flag_names(debug: &str) -> Vec<String> {
    let inner = debug
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(debug);
    if inner == "empty" {
        return Vec::new();
    }
    inner.split(" | ").map(str::to_owned).collect()
}

fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Continue => "continue",
        Reply::Accept => "accept",
        Reply::Reject => "reject",
        Reply::Tempfail => "tempfail",
        Reply::Discard => "discard",
        Reply::Skip => "skip",
        Reply::ReplyCode(_) => "reply_code",
        Reply::Shutdown => "shutdown",
        Reply::NotSent => "not_sent",
        Reply::NoReply => "no_reply",
        _ => "other",
    }
}

fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::ReplyCode(text) => format!("reply {text}"),
        Reply::NotSent => "(not sent: NO_* negotiated)".to_owned(),
        Reply::NoReply => "(no reply: NR_* negotiated)".to_owned(),
        other => reply_name(other).to_owned(),
    }
}

fn modification_text(modification: &Modification) -> String {
    let args = |args: &Option<String>| args.as_ref().map_or(String::new(), |a| format!(" {a}"));
    match modification {
        Modification::AddHeader { name, value } => format!("add header      {name}: {value}"),
        Modification::InsertHeader { index, name, value } => {
            format!("insert header   at {index}: {name}: {value}")
        }
        Modification::ChangeHeader { index, name, value } if value.is_empty() => {
            format!("delete header   {name} #{index}")
        }
        Modification::ChangeHeader { index, name, value } => {
            format!("change header   {name} #{index}: {value}")
        }
        Modification::AddRcpt(rcpt) => format!("add recipient   {rcpt}"),
        Modification::AddRcptWithArgs { rcpt, args: a } => {
            format!("add recipient   {rcpt}{}", args(a))
        }
        Modification::DeleteRcpt(rcpt) => format!("delete recipient {rcpt}"),
        Modification::ChangeFrom { sender, args: a } => {
            format!("change sender   {sender}{}", args(a))
        }
        Modification::ReplaceBody(body) => format!("replace body    ({} bytes)", body.len()),
        Modification::Quarantine(reason) => format!("quarantine      {reason}"),
        other => format!("{other:?}"),
    }
}

fn modification_json(modification: &Modification) -> Value {
    match modification {
        Modification::AddHeader { name, value } => {
            json!({ "kind": "add_header", "name": name, "value": value })
        }
        Modification::InsertHeader { index, name, value } => {
            json!({ "kind": "insert_header", "index": index, "name": name, "value": value })
        }
        Modification::ChangeHeader { index, name, value } => {
            json!({ "kind": "change_header", "index": index, "name": name, "value": value })
        }
        Modification::AddRcpt(rcpt) => json!({ "kind": "add_rcpt", "rcpt": rcpt }),
        Modification::AddRcptWithArgs { rcpt, args } => {
            json!({ "kind": "add_rcpt", "rcpt": rcpt, "args": args })
        }
        Modification::DeleteRcpt(rcpt) => json!({ "kind": "delete_rcpt", "rcpt": rcpt }),
        Modification::ChangeFrom { sender, args } => {
            json!({ "kind": "change_from", "sender": sender, "args": args })
        }
        Modification::ReplaceBody(body) => json!({
            "kind": "replace_body",
            "body": String::from_utf8_lossy(body),
        }),
        Modification::Quarantine(reason) => json!({ "kind": "quarantine", "reason": reason }),
        other => json!({ "kind": "other", "debug": format!("{other:?}") }),
    }
}

fn delivered_json(delivered: &Delivered, input: &[u8], with_diff: bool) -> Value {
    let mut value = json!({
        "sender": delivered.sender,
        "recipients": delivered.recipient_addresses(),
        "headers": delivered.headers.iter()
            .map(|h| json!({ "name": h.name, "value": h.value }))
            .collect::<Vec<_>>(),
        "message": lf(&delivered.to_bytes()),
    });
    if with_diff {
        value["diff"] = json!(diff(input, delivered));
    }
    value
}

/// A unified diff of the delivered message against the input, both with LF line ends.
fn diff(input: &[u8], delivered: &Delivered) -> String {
    let before = lf(input);
    let after = lf(&delivered.to_bytes());
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("input", "delivered")
        .to_string()
}

/// Text with CRLF turned into LF, for the terminal.
fn lf(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

pub(crate) fn error_text(error: &ClientError) -> String {
    let status = ExitStatus::of_error(error);
    let mut text = format!("{}: {error}", status.name());
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            let _ = write!(text, ": {inner_text}");
        }
        source = inner.source();
    }
    text
}
