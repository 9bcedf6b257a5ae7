//! The documented differences from libmilter (README, "Differences from libmilter").
//!
//! Each is a rewrite of the first exchange where the two filters differ, libmilter's side
//! or ours, that takes exactly that difference away: a conversation passes when the rewrites
//! that apply to it make both sides equal. A rewrite is counted as seen only where the
//! comparison fails without it, so an entry that no longer matches anything is reported.
//! Entries marked `to_fix` are differences where libmilter is right and this crate is not
//! yet.

use super::runner::{End, Exchange, Packet};

/// One documented difference.
pub(crate) struct Difference {
    /// A short name for reports.
    pub(crate) id: &'static str,
    /// Why this crate's packets are the right ones, or (`to_fix`) what is wrong with them.
    pub(crate) reason: &'static str,
    /// Libmilter is right here; this crate is to be fixed.
    pub(crate) to_fix: bool,
    /// The conversations (by name) where it may show.
    applies: fn(&str) -> bool,
    /// Takes the difference away: rewrites libmilter's exchange or ours.
    rewrite: fn(&mut Exchange, &mut Exchange),
}

impl Difference {
    pub(crate) fn applies(&self, conversation: &str) -> bool {
        (self.applies)(conversation)
    }

    pub(crate) fn rewrite(&self, lib: &mut Exchange, ours: &mut Exchange) {
        (self.rewrite)(lib, ours);
    }
}

fn everywhere(_: &str) -> bool {
    true
}

/// Codes of end-of-message edits.
fn is_edit(code: u8) -> bool {
    matches!(
        code,
        b'+' | b'-' | b'2' | b'b' | b'e' | b'h' | b'i' | b'm' | b'q'
    )
}

/// The index of an INSHEADER or CHGHEADER packet.
fn index(packet: &Packet) -> u32 {
    packet
        .1
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn set_index(packet: &mut Packet, index: u32) {
    if packet.1.len() >= 4 {
        packet.1[..4].copy_from_slice(&index.to_be_bytes());
    }
}

/// The strings of a packet's payload after `skip` bytes.
fn strings(payload: &[u8], skip: usize) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = payload
        .get(skip..)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect();
    parts.pop(); // after the last NUL
    parts
}

fn cstrings(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part);
        out.push(0);
    }
    out
}

/// The order this crate sends edits in: sender, removed recipients, added recipients,
/// inserted headers (lowest position last), changed headers (highest index first), added
/// headers, the body, quarantine. Inserted headers at one position keep the order they were
/// queued in (so the later call goes first on the wire).
fn send_order(lib: &mut Exchange, _: &mut Exchange) {
    let rank = |p: &Packet| match p.0 {
        b'e' => 0,
        b'-' => 1,
        b'+' | b'2' => 2,
        b'i' => 3,
        b'm' => 4,
        b'h' => 5,
        b'b' => 6,
        _ => 7,
    };
    let positions: Vec<usize> = (0..lib.replies.len())
        .filter(|&i| is_edit(lib.replies[i].0))
        .collect();
    let mut edits: Vec<(usize, Packet)> = positions
        .iter()
        .enumerate()
        .map(|(n, &i)| (n, lib.replies[i].clone()))
        .collect();
    edits.sort_by(|(an, a), (bn, b)| {
        rank(a).cmp(&rank(b)).then_with(|| match (a.0, b.0) {
            (b'i', b'i') => index(b).cmp(&index(a)).then(bn.cmp(an)),
            (b'm', b'm') => index(b).cmp(&index(a)).then(an.cmp(bn)),
            _ => an.cmp(bn),
        })
    });
    for (&i, (_, packet)) in positions.iter().zip(edits) {
        lib.replies[i] = packet;
    }
}

/// PROGRESS asked for by a filter that then answers at once: libmilter writes it, this
/// crate drops it.
fn progress_dropped(lib: &mut Exchange, ours: &mut Exchange) {
    if !ours.replies.iter().any(|p| p.0 == b'p') {
        lib.replies.retain(|p| p.0 != b'p');
    }
}

/// A replacement body given in several pieces: libmilter sends one REPLBODY run per call,
/// this crate the whole body in packets of 65535 bytes.
fn body_repacked(lib: &mut Exchange, _: &mut Exchange) {
    let Some(first) = lib.replies.iter().position(|p| p.0 == b'b') else {
        return;
    };
    let body: Vec<u8> = lib
        .replies
        .iter()
        .filter(|p| p.0 == b'b')
        .flat_map(|p| p.1.clone())
        .collect();
    lib.replies.retain(|p| p.0 != b'b');
    let mut packets: Vec<Packet> = body.chunks(65535).map(|c| (b'b', c.to_vec())).collect();
    if packets.is_empty() {
        packets.push((b'b', Vec::new()));
    }
    lib.replies.splice(first..first, packets);
}

/// Edits followed by a refusal: libmilter sends them anyway, this crate drops them.
fn edits_dropped_on_refusal(lib: &mut Exchange, ours: &mut Exchange) {
    let refused = |e: &Exchange| matches!(e.replies.last(), Some((b'r' | b't' | b'd' | b'y', _)));
    if refused(lib) && refused(ours) && !ours.replies.iter().any(|p| is_edit(p.0)) {
        lib.replies.retain(|p| !is_edit(p.0) && p.0 != b'p');
    }
}

/// ADDHEADER on Sendmail: this crate sends INSHEADER at the end instead.
fn sendmail_add_header(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        if packet.0 == b'i' && index(packet) == 0x7fff_fffe {
            *packet = (b'h', packet.1[4..].to_vec());
        }
    }
}

fn postfix_layout(name: &str) -> bool {
    name.contains("/postfix/")
}

fn sendmail_layout(name: &str) -> bool {
    name.contains("/sendmail/")
}

/// INSHEADER positions in Postfix's numbering: one more than the headers the filter saw.
fn postfix_insert_index(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        let n = index(packet);
        if packet.0 == b'i' && n > 0 && n != 0x7fff_fffe {
            set_index(packet, n - 1);
        }
    }
}

/// INSHEADER positions in Sendmail's numbering: eight more than the headers the filter saw.
fn sendmail_insert_index(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        let n = index(packet);
        if packet.0 == b'i' && n >= 8 && n != 0x7fff_fffe {
            set_index(packet, n - 8);
        }
    }
}

/// An insert past the last header: libmilter sends the index given, this crate appends.
fn insert_past_end(lib: &mut Exchange, _: &mut Exchange) {
    for packet in &mut lib.replies {
        if packet.0 == b'i' {
            *packet = (b'h', packet.1[4..].to_vec());
        }
    }
}

/// CHGHEADER names the header as the MTA sent it (both MTAs compare names ignoring case).
fn header_name_as_seen(lib: &mut Exchange, ours: &mut Exchange) {
    for packet in lib.replies.iter_mut().chain(ours.replies.iter_mut()) {
        if packet.0 == b'm' {
            let name_end = packet.1[4..]
                .iter()
                .position(|&b| b == 0)
                .map_or(4, |p| p + 4);
            packet.1[4..name_end].make_ascii_lowercase();
        }
    }
}

/// CHGHEADER index 0 (both MTAs read it as 1): this crate names headers by handle, 1-based.
fn change_index_zero(lib: &mut Exchange, _: &mut Exchange) {
    for packet in &mut lib.replies {
        if packet.0 == b'm' && index(packet) == 0 {
            set_index(packet, 1);
        }
    }
}

/// A header the filter never saw cannot be changed: this crate names headers by handle.
fn unseen_header_not_changed(lib: &mut Exchange, ours: &mut Exchange) {
    if !ours.replies.iter().any(|p| p.0 == b'm') {
        lib.replies.retain(|p| p.0 != b'm');
    }
}

fn leading_space_config(name: &str) -> bool {
    name.starts_with("options/") || name.starts_with("negotiate/options/")
}

/// With `HDR_LEADSPC` the MTA adds no space after the colon: this crate puts it in front of
/// every added, inserted or changed value, so a value means the same either way.
fn leading_space_added(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        let skip = match packet.0 {
            b'h' => 0,
            b'i' | b'm' => 4,
            _ => continue,
        };
        let parts = strings(&packet.1, skip);
        if let [name, value] = parts.as_slice() {
            if let Some(rest) = value.strip_prefix(b" ") {
                let mut payload = packet.1[..skip].to_vec();
                payload.extend(cstrings(&[name, rest]));
                packet.1 = payload;
            }
        }
    }
}

/// With `HDR_LEADSPC` the MTA sends the space after the colon: `HeaderField::value` leaves
/// it out, the same value as without the flag (the hook echoes `[name]=[value]`).
fn leading_space_shown(lib: &mut Exchange, _: &mut Exchange) {
    for packet in &mut lib.replies {
        if packet.0 == b'y' {
            let text = String::from_utf8_lossy(&packet.1).replacen("]=[ ", "]=[", 1);
            packet.1 = text.into_bytes();
        }
    }
}

/// An OPTNEG reply: version, actions, protocol, and the macro lists (stage, names).
type OptNeg = (u32, u32, u32, Vec<(u32, Vec<u8>)>);

/// The OPTNEG reply's fields and macro-list entries.
fn optneg(packet: &Packet) -> Option<OptNeg> {
    if packet.0 != b'O' || packet.1.len() < 12 {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes(packet.1[at..at + 4].try_into().unwrap_or_default());
    let mut lists = Vec::new();
    let mut rest = &packet.1[12..];
    while rest.len() > 4 {
        let stage = u32::from_be_bytes(rest[..4].try_into().unwrap_or_default());
        let end = rest[4..].iter().position(|&b| b == 0)? + 4;
        lists.push((stage, rest[4..end].to_vec()));
        rest = &rest[end + 1..];
    }
    Some((word(0), word(4), word(8), lists))
}

fn set_optneg(
    packet: &mut Packet,
    version: u32,
    actions: u32,
    protocol: u32,
    lists: &[(u32, Vec<u8>)],
) {
    let mut payload = Vec::new();
    for v in [version, actions, protocol] {
        payload.extend_from_slice(&v.to_be_bytes());
    }
    for (stage, names) in lists {
        payload.extend_from_slice(&stage.to_be_bytes());
        payload.extend_from_slice(names);
        payload.push(0);
    }
    packet.1 = payload;
}

/// Below version 6 the actions are version 2's (CHGFROM, `ADDRCPT_PAR` and SETSYMLIST are
/// version 6 actions); macro lists go only with version 6 and an offered SETSYMLIST.
fn version_6_only(lib: &mut Exchange, _: &mut Exchange) {
    for packet in &mut lib.replies {
        if let Some((version, mut actions, protocol, mut lists)) = optneg(packet) {
            if version < 6 {
                actions &= 0x3F;
            }
            if version < 6 || actions & 0x100 == 0 {
                lists.clear();
            }
            set_optneg(packet, version, actions, protocol, &lists);
        }
    }
}

/// The version 6 edits that libmilter agreed to below version 6 (see [`version_6_only`]):
/// it then sends them, this crate cannot.
fn version_6_edits(lib: &mut Exchange, ours: &mut Exchange) {
    if lib.command == b'E' && !ours.replies.iter().any(|p| matches!(p.0, b'e' | b'2')) {
        lib.replies.retain(|p| !matches!(p.0, b'e' | b'2'));
    }
}

fn below_version_6(name: &str) -> bool {
    ["-v2", "-v3", "-v4"].iter().any(|v| name.contains(v))
}

/// Requested macro lists completed: `i` where the stage's default list has it, and an
/// end-of-headers list with an end-of-message one (Sendmail uses either only with both).
fn macro_lists_completed(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        if let Some((version, actions, protocol, lists)) = optneg(packet) {
            let lists: Vec<(u32, Vec<u8>)> = lists
                .into_iter()
                .filter_map(|(stage, names)| {
                    let kept: Vec<&[u8]> =
                        names.split(|&b| b == b' ').filter(|n| *n != b"i").collect();
                    (!kept.is_empty()).then(|| (stage, kept.join(&b' ')))
                })
                .collect();
            set_optneg(packet, version, actions, protocol, &lists);
        }
    }
}

fn answered(e: &Exchange, code: u8) -> bool {
    e.replies.len() == 1 && e.replies[0].0 == code
}

/// Rewrites libmilter's lone `from` answer to `command` into ours when ours is `to`.
fn lib_answer(lib: &mut Exchange, ours: &Exchange, commands: &[u8], from: &[u8], to: u8) {
    if commands.contains(&lib.command)
        && from.iter().any(|&f| answered(lib, f))
        && answered(ours, to)
    {
        lib.replies.clone_from(&ours.replies);
    }
}

/// Accept or discard at RCPT concern the message: held to the next message-wide event.
fn rcpt_verdict_held(lib: &mut Exchange, ours: &mut Exchange) {
    lib_answer(lib, ours, b"R", b"ad", b'c');
}

/// Discard at CONNECT, HELO or UNKNOWN, and accept at UNKNOWN, mean nothing to an MTA.
fn connection_discard(lib: &mut Exchange, ours: &mut Exchange) {
    lib_answer(lib, ours, b"CH", b"d", b'c');
    lib_answer(lib, ours, b"U", b"ad", b'c');
}

/// SKIP answers only a body chunk.
fn skip_only_body(lib: &mut Exchange, ours: &mut Exchange) {
    lib_answer(lib, ours, b"CHMRTLNEU", b"s", b'c');
}

/// `%` in a reply text is doubled (Sendmail reads the text as a format).
fn percent_doubled(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        if packet.0 == b'y' {
            packet.1 = String::from_utf8_lossy(&packet.1)
                .replace("%%", "%")
                .into_bytes();
        }
    }
}

/// Data in BODYEOB refused by the body callback: libmilter answers twice.
fn eob_double_answer(lib: &mut Exchange, ours: &mut Exchange) {
    if lib.command == b'Q' && ours.replies.is_empty() && lib.replies.len() == 1 {
        lib.replies.clear();
    }
}

/// A long macro name without braces finds the braced one (`daemon_name`, `{daemon_name}`).
fn macro_name_without_braces(_: &mut Exchange, ours: &mut Exchange) {
    for packet in &mut ours.replies {
        let text = String::from_utf8_lossy(&packet.1).into_owned();
        if let Some(rest) = text.strip_prefix("550 5.7.1 daemon_name=") {
            let _ = rest;
            packet.1 = b"550 5.7.1 daemon_name unset\0".to_vec();
        }
    }
}

/// Malformed input: this crate closes the connection, libmilter ignores the command and the
/// MTA times out.
fn malformed_closed(lib: &mut Exchange, ours: &mut Exchange) {
    if lib.end == End::Timeout
        && lib.replies.is_empty()
        && ours.end == End::Closed
        && ours.replies.is_empty()
    {
        lib.end = End::Closed;
    }
}

/// A command out of order (RCPT before MAIL): this crate answers it, libmilter ignores it
/// and the MTA times out.
fn out_of_order_answered(lib: &mut Exchange, ours: &mut Exchange) {
    if lib.end == End::Timeout && lib.replies.is_empty() && ours.end == End::Answered {
        *lib = ours.clone();
    }
}

/// Every documented difference, in the order their rewrites apply (header positions are
/// translated before the edit order is compared).
pub(crate) fn allowed() -> Vec<Difference> {
    [
        edit_differences(),
        negotiation_differences(),
        verdict_differences(),
        input_differences(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// End-of-message edits.
fn edit_differences() -> Vec<Difference> {
    vec![
        Difference {
            id: "progress-when-ready",
            reason: "PROGRESS only restarts the MTA's timeouts while it waits; a filter that answers in the same poll has nothing to keep alive, so the request is dropped (Session::progress: it goes out when the filter yields)",
            to_fix: false,
            applies: everywhere,
            rewrite: progress_dropped,
        },
        Difference {
            id: "edits-dropped-on-refusal",
            reason: "edits only take effect with accept or continue; sent before a reject, tempfail, discard or reply code they are dead weight (and Postfix rejects REPLBODY mixed with a refusal)",
            to_fix: false,
            applies: everywhere,
            rewrite: edits_dropped_on_refusal,
        },
        Difference {
            id: "body-repacked",
            reason: "a body given in pieces goes out as one REPLBODY run in packets of up to 65535 bytes, not one run per call; the MTA concatenates either",
            to_fix: false,
            applies: everywhere,
            rewrite: body_repacked,
        },
        Difference {
            id: "sendmail-add-header",
            reason: "Sendmail's ADDHEADER puts a header whose name it added itself above the existing one; INSHEADER at index 0x7ffffffe appends on both MTAs",
            to_fix: false,
            applies: everywhere,
            rewrite: sendmail_add_header,
        },
        Difference {
            id: "postfix-insert-position",
            reason: "Postfix counts its own Received: header (which filters never see) in INSHEADER positions: the crate translates a position among the headers seen",
            to_fix: false,
            applies: postfix_layout,
            rewrite: postfix_insert_index,
        },
        Difference {
            id: "sendmail-insert-position",
            reason: "Sendmail counts its header templates in INSHEADER positions: the crate translates a position among the headers seen",
            to_fix: false,
            applies: sendmail_layout,
            rewrite: sendmail_insert_index,
        },
        Difference {
            id: "insert-past-end",
            reason: "a position past the last header is the end: sent as the append of that MTA",
            to_fix: false,
            applies: |name| name.contains("/ins-past-end/"),
            rewrite: insert_past_end,
        },
        Difference {
            id: "edit-order",
            reason: "edits go out in a fixed order (sender, recipients, inserted headers, changed headers from the highest index down, added headers, body, quarantine) so that header indexes stay right on Postfix, which shifts later indexes after a delete; libmilter sends them in call order",
            to_fix: false,
            applies: everywhere,
            rewrite: send_order,
        },
        Difference {
            id: "header-name-as-seen",
            reason: "a header is changed through the handle of a header the filter saw, named as the MTA sent it; both MTAs compare names ignoring case",
            to_fix: false,
            applies: everywhere,
            rewrite: header_name_as_seen,
        },
        Difference {
            id: "change-index-zero",
            reason: "headers are named by handle, so the index is 1-based; libmilter passes the filter's 0 on, which both MTAs read as 1",
            to_fix: false,
            applies: |name| name.contains("/chghdr-index-0/"),
            rewrite: change_index_zero,
        },
        Difference {
            id: "unseen-header-not-changed",
            reason: "a filter that negotiated headers away has no handle to change one with; libmilter's smfi_chgheader names headers it never saw",
            to_fix: false,
            applies: |name| name.contains("minimal"),
            rewrite: unseen_header_not_changed,
        },
        Difference {
            id: "leading-space-added",
            reason: "with HDR_LEADSPC the MTA adds no space after the colon, so the crate puts it in front of added, inserted and changed values: a value means the same whatever was negotiated",
            to_fix: false,
            applies: leading_space_config,
            rewrite: leading_space_added,
        },
        Difference {
            id: "leading-space-value",
            reason: "HeaderField::value leaves out the space after the colon whether or not HDR_LEADSPC was negotiated (the exact bytes are kept for write_raw)",
            to_fix: false,
            applies: |name| name.starts_with("options/leadspc-echo"),
            rewrite: leading_space_shown,
        },
    ]
}

/// Negotiation.
fn negotiation_differences() -> Vec<Difference> {
    vec![
        Difference {
            id: "version-6-actions",
            reason: "below protocol version 6 only version 2's actions are agreed (CHGFROM, ADDRCPT_PAR, SETSYMLIST are version 6), and macro lists go only with version 6 and an offered SETSYMLIST; libmilter agrees to whatever the filter asks within the offer",
            to_fix: false,
            applies: everywhere,
            rewrite: version_6_only,
        },
        Difference {
            id: "version-6-edits",
            reason: "the consequence of version-6-actions at end of message: CHGFROM and ADDRCPT_PAR are refused when queued (Error::Unavailable) rather than sent to an MTA that speaks an older version",
            to_fix: false,
            applies: below_version_6,
            rewrite: version_6_edits,
        },
        Difference {
            id: "macro-lists-completed",
            reason: "a requested macro list keeps the queue id `i` where the stage's default has it, and an end-of-message list comes with an end-of-headers one (Sendmail 8.17 uses either only with both)",
            to_fix: false,
            applies: |name| name.contains("macros"),
            rewrite: macro_lists_completed,
        },
    ]
}

/// Answers to events.
fn verdict_differences() -> Vec<Difference> {
    vec![
        Difference {
            id: "rcpt-accept-discard-held",
            reason: "accept and discard returned at RCPT concern the whole message: held until the next message-wide event, since sent at RCPT an MTA applies them to that recipient or the filter's whole message inconsistently",
            to_fix: false,
            applies: everywhere,
            rewrite: rcpt_verdict_held,
        },
        Difference {
            id: "no-discard-at-connection",
            reason: "DISCARD is not an answer to CONNECT, HELO or UNKNOWN, nor ACCEPT to UNKNOWN (protocol reference §4.2): the command is let through (a discard at CONNECT or HELO is held and sent at the next MAIL)",
            to_fix: false,
            applies: everywhere,
            rewrite: connection_discard,
        },
        Difference {
            id: "skip-only-body",
            reason: "SKIP answers only a body chunk (protocol reference §4.4); elsewhere it is continue",
            to_fix: false,
            applies: everywhere,
            rewrite: skip_only_body,
        },
        Difference {
            id: "percent-doubled",
            reason: "`%` in a reply text is doubled: Sendmail reads the text as a format and drops a reply with a lone `%`",
            to_fix: false,
            applies: everywhere,
            rewrite: percent_doubled,
        },
        Difference {
            id: "eob-data-one-answer",
            reason: "data in BODYEOB refused by the body hook: one answer; libmilter answers twice (its end-of-body code sends the body reply and returns it for sending again)",
            to_fix: false,
            applies: |name| name.starts_with("event/eob-with-data/"),
            rewrite: eob_double_answer,
        },
    ]
}

/// What the MTA sends.
fn input_differences() -> Vec<Difference> {
    vec![
        Difference {
            id: "macro-name-without-braces",
            reason: "a macro looked up without braces finds it with braces whatever its length; libmilter does so only for one-letter names",
            to_fix: false,
            applies: |name| name.contains("/daemon_name"),
            rewrite: macro_name_without_braces,
        },
        Difference {
            id: "malformed-closes",
            reason: "a malformed command closes the connection at once with a log line; libmilter ignores it and leaves the MTA to time out",
            to_fix: false,
            applies: |name| name.starts_with("malformed/"),
            rewrite: malformed_closed,
        },
        Difference {
            id: "out-of-order-answered",
            reason: "a command out of order (RCPT before MAIL) is answered; libmilter drops it without a reply and the MTA times out",
            to_fix: false,
            applies: |name| name.starts_with("malformed/rcpt-before-mail"),
            rewrite: out_of_order_answered,
        },
    ]
}
