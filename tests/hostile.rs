//! The hostile-input catalogue: every way an MTA (or anything else that reaches the milter
//! port) can misbehave, and every way a filter can, each sent over TCP loopback to a real
//! server process (`examples/fault_target.rs`) and answered as the table says.
//!
//! One line per case: its name, the attack, the expected outcome. An outcome is a specific
//! reply sequence (see `hostile/pattern.rs`: `cc t` is continue, continue, tempfail), a close
//! within a bound, a line in the server's log, or several of these; never a crash or a hang.
//! After each case the runner (`hostile/mod.rs`) also checks that
//!
//! 1. a fresh connection gets a normal session (negotiation, a message accepted with the
//!    filter's header, QUIT);
//! 2. a neighbour session, sending message after message on its own connection while the
//!    case ran, got only normal replies;
//! 3. every connection the server opened during the case is logged as closed, its memory
//!    peaked within the case's budget and came back within `RSS_TOLERANCE` of where it was
//!    (`/proc/PID/status`, `VmHWM` reset through `clear_refs`);
//! 4. the server process is alive.
//!
//! The server runs with short limits (`hostile/mod.rs`: negotiation 300 ms, read 1.5 s,
//! write 0.5 s, PROGRESS every 200 ms, 1,000 headers, 64 KiB of headers), so the whole
//! catalogue takes seconds. `HOSTILE_CASES=text cargo test --test hostile -- --nocapture`
//! runs the cases whose name contains `text` and prints each case's time and problems.

mod built;
#[path = "hostile/mod.rs"]
mod hostile;

use hostile::attacks::{
    Cut, announce, announced_lengths, churn, cut_short, fresh, fresh_then_eof, from, garbage,
    greeted, greeting, greeting_and_message, hang_at_eom, hang_at_mail, headers, huge_reply,
    idle_after_negotiation, idle_connections, in_body, in_data, in_message, in_message_then_eof,
    message, negotiated, never_reads, nothing, offer, queue_id_with_newline, script, times,
    tls_client_hello, trickle,
};
use hostile::wire::{
    bare, body, connect, connect_payload, cstrs, frame, header, helo, macros, mail, optneg,
    optneg_with, rcpt,
};
use hostile::{
    Case, MAX_HEADER_BYTES, MAX_HEADERS, NEGOTIATION_TIMEOUT, answers, case, checked, closes,
    closes_with, run_catalogue, times_out,
};

/// What the server logs when it closes a connection for bytes that are not the protocol.
const BAD: &str = "closed: protocol error: ";

// One line per case, as a table reads.
#[rustfmt::skip]
#[allow(clippy::too_many_lines)]
fn catalogue() -> Vec<Case> {
    vec![
        case("control: nothing at all", nothing(), checked().alarms(0)),

        // ===== framing =====
        case("framing: zero length first", fresh(|| vec![0, 0, 0, 0]), closes("frame length is zero")),
        case("framing: zero length mid-message", in_message(|| vec![0, 0, 0, 0]), closes("frame length is zero")),
        case("framing: one byte over the maximum", negotiated(|| announce(512 * 1024 + 1, b'B')), closes("frame length 524289 exceeds the maximum of 524288")),
        case("framing: length u32::MAX", fresh(|| announce(u32::MAX, b'O')), closes("exceeds the maximum")),
        case("framing: length 2^31 mid-message", in_message(|| announce(1 << 31, b'L')), closes("exceeds the maximum")),
        case("framing: 512 KiB announced, trickled byte by byte", trickle(|| announce(512 * 1024, b'B')), checked().logged("closed: MTA silent beyond the read timeout").alarms(1)),
        case("framing: 200 connections announce 512 KiB and stop", script(announced_lengths), checked().logged("closed: no negotiation within the negotiation timeout").alarms(200).peak(16 << 20)),
        case("framing: length cut short, then EOF", fresh_then_eof(|| vec![0, 0]), closes("stream ended inside a frame")),
        case("framing: payload cut short, then EOF", in_message_then_eof(|| frame(b'L', &[b'x'; 100])[..20].to_vec()), closes("stream ended inside a frame")),
        case("framing: garbage", fresh(garbage), closes(BAD)),
        case("framing: garbage after valid commands", negotiated(|| [connect("c.example"), helo("c.example"), garbage()].concat()), closes_with("cc", BAD)),
        case("framing: HTTP request", fresh(|| b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()), closes("exceeds the maximum")),
        case("framing: TLS ClientHello", fresh(tls_client_hello), closes("exceeds the maximum")),
        case("framing: SMTP command", fresh(|| b"EHLO mta.example.com\r\n".to_vec()), closes("exceeds the maximum")),

        // ===== negotiation =====
        case("negotiation: version 0", fresh(|| optneg_with(0, 0x1ff, 0x1f_ffff)), closes("protocol version 0")),
        case("negotiation: version 1", fresh(|| optneg_with(1, 0x1ff, 0x1f_ffff)), closes("protocol version 1")),
        case("negotiation: version 2", offer(2, 0x3f, 0x7f, 2), answers("O").logged("protocol version 2 never sends Events(DATA | UNKNOWN)").alarms(3)),
        case("negotiation: version 7 gets 6", offer(7, 0x1ff, 0x1f_ffff, 6), answers("O")),
        case("negotiation: version 8 gets 6", offer(8, 0x1ff, 0x1f_ffff, 6), answers("O")),
        case("negotiation: version u32::MAX gets 6", offer(u32::MAX, 0x1ff, 0x1f_ffff, 6), answers("O")),
        case("negotiation: every bit offered", offer(6, u32::MAX, u32::MAX, 6), answers("O")),
        case("negotiation: nothing offered", offer(6, 0, 0, 6), answers("O").logged("MTA does not allow").alarms(2)),
        case("negotiation: OPTNEG twice", negotiated(optneg), closes("unexpected command b'O'")),
        case("negotiation: OPTNEG with trailing bytes", fresh(|| frame(b'O', &[0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff, 0xde, 0xad])), closes("OPTNEG packet has trailing bytes")),
        case("negotiation: OPTNEG cut short", fresh(|| frame(b'O', &[0, 0, 0, 6, 0, 0])), closes("OPTNEG packet ends inside")),
        case("negotiation: CONNECT instead of OPTNEG", fresh(|| connect("c.example")), closes("expected OPTNEG")),
        case("negotiation: QUIT instead of OPTNEG", fresh(|| bare(b'Q')), closes("expected OPTNEG")),
        case("negotiation: silence", fresh(Vec::new), times_out(NEGOTIATION_TIMEOUT, "closed: no negotiation within the negotiation timeout")),
        case("negotiation: half an OPTNEG, then silence", fresh(|| optneg()[..7].to_vec()), times_out(NEGOTIATION_TIMEOUT, "closed: no negotiation within the negotiation timeout")),

        // ===== malformed commands =====
        case("CONNECT: empty", negotiated(|| frame(b'C', b"")), closes("CONNECT packet ends inside hostname")),
        case("CONNECT: host name without NUL", negotiated(|| frame(b'C', b"c.example")), closes("CONNECT packet ends inside hostname")),
        case("CONNECT: unknown family", negotiated(|| frame(b'C', b"c.example\0X")), closes("unknown address family b'X'")),
        case("CONNECT: no port", negotiated(|| frame(b'C', b"c.example\x004")), closes("CONNECT packet ends inside port")),
        case("CONNECT: address without NUL", negotiated(|| frame(b'C', b"c.example\x004\x01\x02192.0.2.1")), closes("CONNECT packet ends inside address")),
        case("CONNECT: trailing bytes", negotiated(|| frame(b'C', &[connect_payload("c.example"), b"junk".to_vec()].concat())), closes("CONNECT packet has trailing bytes")),
        case("HELO: empty", negotiated(|| frame(b'H', b"")), closes("HELO packet ends inside name")),
        case("HELO: two names", negotiated(|| frame(b'H', &cstrs(&[b"a", b"b"]))), closes("HELO packet has trailing bytes")),
        case("MAIL: empty", greeted(|| frame(b'M', b"")), closes("MAIL packet holds no address")),
        case("MAIL: address without NUL", greeted(|| frame(b'M', b"<a@example.com>")), closes("MAIL packet ends inside address")),
        case("MAIL: ESMTP argument without NUL", greeted(|| frame(b'M', b"<a@example.com>\0SIZE=1")), closes("MAIL packet ends inside ESMTP argument")),
        case("RCPT: empty", greeted(|| [mail("<a@example.com>"), frame(b'R', b"")].concat()), closes_with("c", "RCPT packet holds no address")),
        case("RCPT: address without NUL", greeted(|| [mail("<a@example.com>"), frame(b'R', b"<b@example.net>")].concat()), closes_with("c", "RCPT packet ends inside address")),
        case("HEADER: name only", in_message(|| frame(b'L', b"Subject\0")), closes("HEADER packet ends inside value")),
        case("HEADER: no NUL at all", in_message(|| frame(b'L', b"Subject")), closes("HEADER packet ends inside name")),
        case("HEADER: three strings", in_message(|| frame(b'L', &cstrs(&[b"A", b"b", b"c"]))), closes("HEADER packet has trailing bytes")),
        case("BODY: empty chunk", in_body(|| body(b"")), answers("c")),
        case("BODY: 256 KiB chunk", in_body(|| body(&vec![b'x'; 256 * 1024])), answers("c")),
        case("MACRO: empty", greeted(|| frame(b'D', b"")), closes("MACRO packet ends inside command code")),
        case("MACRO: name without value", greeted(|| frame(b'D', b"Mi\0")), closes("name without a value")),
        case("MACRO: name without NUL", greeted(|| frame(b'D', b"Mi")), closes("MACRO packet ends inside macro pair")),
        case("MACRO: for an unknown command", greeted(|| macros(b'Z', &[("i", "Q1")])), answers("")),
        case("MACRO: empty names and values", greeted(|| macros(b'M', &[("", ""), ("", "")])), answers("")),
        case("UNKNOWN: no NUL", greeted(|| frame(b'U', b"XYZZY")), closes("UNKNOWN packet ends inside command")),
        case("UNKNOWN: trailing bytes", greeted(|| frame(b'U', b"XYZZY\0more")), closes("UNKNOWN packet has trailing bytes")),
        case("DATA: with a payload", in_data(|| frame(b'T', b"x")), closes("DATA packet has trailing bytes")),
        case("EOH: with a payload", in_message(|| frame(b'N', b"x")), closes("EOH packet has trailing bytes")),
        case("EOM: with a last body chunk", in_body(|| frame(b'E', b"last\r\n")), answers("ha")),
        case("ABORT: with a payload", in_message(|| frame(b'A', b"x")), closes("ABORT packet has trailing bytes")),
        case("QUIT: with a payload", greeted(|| frame(b'Q', b"x")), closes("QUIT packet has trailing bytes")),
        case("QUIT_NC: with a payload", greeted(|| frame(b'K', b"x")), closes("QUIT_NC packet has trailing bytes")),
        case("command byte 'Z'", greeted(|| frame(b'Z', b"")), closes("unknown command byte b'Z'")),
        case("command byte 0x00", greeted(|| frame(0, b"")), closes("unknown command byte 0x00")),
        case("command byte of a reply ('a')", greeted(|| frame(b'a', b"")), closes("unknown command byte b'a'")),

        // ===== commands out of order =====
        case("order: RCPT before MAIL", greeted(|| rcpt("<b@example.net>")), answers("c").logged("filter failed: the MTA went on without sending MAIL").alarms(1)),
        case("order: HEADER before MAIL", greeted(|| header("Subject", "x")), answers("t").logged("filter failed: the MTA went on without sending MAIL").alarms(1)),
        case("order: end of message without MAIL", greeted(|| bare(b'E')), answers("t").logged("filter failed: the MTA went on without sending MAIL").alarms(1)),
        case("order: BODY before end of headers", in_message(|| body(b"x")), answers("c")),
        case("order: DATA twice", in_data(|| bare(b'T')), answers("c")),
        case("order: end of headers twice", in_message(|| [bare(b'N'), bare(b'N')].concat()), answers("cc")),
        case("order: MAIL twice without ABORT", in_data(|| mail("<again@example.com>")), answers("c")),
        case("order: CONNECT mid-message", in_message(|| connect("c.example")), answers("c")),
        case("order: HELO mid-message", in_message(|| helo("c.example")), answers("c")),
        case("order: end of message twice", in_body(|| [bare(b'E'), bare(b'E')].concat()), answers("ha t").logged("filter failed: the MTA went on without sending MAIL").alarms(1)),
        case("order: ABORT outside a message", greeted(|| bare(b'A')), answers("")),
        case("order: QUIT_NC mid-message", in_message(|| bare(b'K')), answers("")),
        case("order: OPTNEG mid-message", in_message(optneg), closes("unexpected command b'O'")),

        // ===== floods =====
        case("flood: 10,000 macro packets", greeted(|| times(10_000, &macros(b'M', &[("{mail_addr}", "a@example.com"); 20]))), answers("")),
        case("flood: one macro packet of 19,000 pairs", greeted(|| macros(b'M', &vec![("{mail_addr}", "a@example.com"); 19_000])), answers("")),
        case("flood: one header over the limit, then stop", in_data(|| [headers(MAX_HEADERS + 1, 10), bare(b'Q')].concat()), closes_with("c{1000} t", "more than 1000 headers")),
        case("flood: 3,000 headers and the rest of the message", in_data(|| [headers(3 * MAX_HEADERS, 10), bare(b'N'), body(b"x"), bare(b'E'), bare(b'Q')].concat()), closes_with("c{1000} t+", "more than 1000 headers").logged("the MTA sent Header after the message's verdict").alarms(2)),
        case("flood: headers of 1 KiB beyond the byte limit", in_data(|| [headers(MAX_HEADER_BYTES / 1024 + 1, 1024), bare(b'Q')].concat()), closes_with("c+ t+", "headers are larger than 65536 bytes").logged("the MTA sent Header after the message's verdict").alarms(2)),
        case("flood: 3,000 headers of 1 KiB and the rest of the message", in_data(|| [headers(3 * MAX_HEADER_BYTES / 1024, 1024), bare(b'N'), body(b"x"), bare(b'E'), bare(b'Q')].concat()), closes_with("c+ t+", "headers are larger than 65536 bytes").logged("the MTA sent Header after the message's verdict").alarms(2)),
        case("flood: one header over the byte limit", in_data(|| [headers(1, MAX_HEADER_BYTES + 1), bare(b'Q')].concat()), closes_with("t", "headers are larger than 65536 bytes")),
        case("flood: 20,000 ESMTP arguments", greeted(|| frame(b'M', &[&b"<a@example.com>\0"[..], &b"X-ARG=1\0".repeat(20_000)].concat())), answers("c")),
        case("flood: 20,000 recipients", in_data(|| times(20_000, &rcpt("<b@example.net>"))), answers("c{20000}")),
        case("flood: 100,000 ABORTs", greeted(|| times(100_000, &bare(b'A'))), answers("")),
        case("flood: 10,000 QUIT_NCs", greeted(|| times(10_000, &bare(b'K'))), answers("")),
        case("flood: 20,000 unknown commands", greeted(|| times(20_000, &frame(b'U', b"XYZZY\0"))), answers("c{20000}")),
        case("flood: 10,000 CONNECTs", negotiated(|| times(10_000, &connect("c.example"))), answers("c{10000}")),
        case("flood: 32 MiB of body", in_body(|| times(512, &body(&vec![b'x'; 65_535]))), answers("c{512}")),

        // ===== resources =====
        case("resource: slowloris header", trickle(|| header("Subject", &"x".repeat(200))[..3].to_vec()), checked().logged("closed: MTA silent beyond the read timeout").alarms(1)),
        case("resource: 2,000 idle connections", script(idle_connections), checked().logged("closed: no negotiation within the negotiation timeout").alarms(2000)),
        case("resource: 100 connections idle after OPTNEG", script(idle_after_negotiation), checked().logged("closed: MTA silent beyond the read timeout").alarms(100)),
        case("resource: 2,000 connections opened and dropped", script(churn), checked()),
        case("resource: reset mid-body", cut_short("<alice@example.com>", Cut::Reset), checked().logged("closed: I/O error: Connection reset by peer").alarms(1)),
        case("resource: closed mid-body", cut_short("<alice@example.com>", Cut::Close), checked().alarms(0)),
        case("resource: never reads a 64 MiB reply", script(never_reads), checked().logged("closed: MTA not reading replies beyond the write timeout").alarms(1).peak(320 << 20)),
        case("resource: half-close after HELO", fresh_then_eof(greeting), closes_with("O cc", "closed").alarms(0)),
        case("resource: half-close after a whole message", fresh_then_eof(greeting_and_message), closes_with("O cc cccccc ha", "closed").alarms(0)),

        // ===== the filter misbehaves =====
        case("filter: error at CONNECT", message("error-at-connect", "client.example.com", "<alice@example.com>"), answers("cc t").logged("filter failed: filter error: fault injected at connect").alarms(1)),
        case("filter: panic at CONNECT", message("panic-at-connect", "client.example.com", "<alice@example.com>"), answers("cc t").logged("filter panicked: fault injected at connect").alarms(1)),
        case("filter: error at HELO", message("client.example.com", "error-at-helo", "<alice@example.com>"), answers("cc t").logged("filter failed: filter error: fault injected at helo").alarms(1)),
        case("filter: panic at HELO", message("client.example.com", "panic-at-helo", "<alice@example.com>"), answers("cc t").logged("filter panicked: fault injected at helo").alarms(1)),
        case("filter: error at MAIL", from("<error-at-mail@x>"), answers("cc t").logged("filter failed: filter error: fault injected at mail").alarms(1)),
        case("filter: panic at MAIL", from("<panic-at-mail@x>"), answers("cc t").logged("filter panicked: fault injected at mail").alarms(1)),
        case("filter: panic at RCPT", from("<panic-at-rcpt@x>"), answers("cc cc t").logged("filter panicked: fault injected at rcpt").alarms(1)),
        case("filter: error at RCPT", from("<error-at-rcpt@x>"), answers("cc cc t").logged("filter failed: filter error: fault injected at rcpt").alarms(1)),
        case("filter: error at a header", from("<error-at-header@x>"), answers("cc ccc t").logged("filter failed: filter error: fault injected at header").alarms(1)),
        case("filter: panic at a header", from("<panic-at-header@x>"), answers("cc ccc t").logged("filter panicked: fault injected at header").alarms(1)),
        case("filter: error at end of headers", from("<error-at-eoh@x>"), answers("cc cccc t").logged("filter failed: filter error: fault injected at eoh").alarms(1)),
        case("filter: panic at end of headers", from("<panic-at-eoh@x>"), answers("cc cccc t").logged("filter panicked: fault injected at eoh").alarms(1)),
        case("filter: error at a body chunk", from("<error-at-body@x>"), answers("cc ccccc t").logged("filter failed: filter error: fault injected at body").alarms(1)),
        case("filter: panic at a body chunk", from("<panic-at-body@x>"), answers("cc ccccc t").logged("filter panicked: fault injected at body").alarms(1)),
        case("filter: error at end of message", from("<error-at-eom@x>"), answers("cc cccccc t").logged("filter failed: filter error: fault injected at eom").alarms(1)),
        case("filter: panic at end of message", from("<panic-at-eom@x>"), answers("cc cccccc t").logged("filter panicked: fault injected at eom").alarms(1)),
        case("filter: panic with a number", from("<panic-number-at-eom@x>"), answers("cc cccccc t").logged("filter panicked").alarms(1)),
        case("filter: never returns at MAIL", script(hang_at_mail), checked().alarms(0)),
        case("filter: never returns at end of message", script(hang_at_eom), checked().alarms(0)),
        case("filter: blocks its thread at MAIL", from("<block-at-mail@x>"), answers("cc cccccc ha")),
        case("filter: blocks its thread at end of message", from("<block-at-eom@x>"), answers("cc cccccc ha")),
        case("filter: panics while dropped after ABORT", cut_short("<panic-on-drop@x>", Cut::Abort), answers("").logged_together(" panicked", "fault injected: panic while the filter is dropped").alarms(1)),
        case("filter: panics while dropped at QUIT", cut_short("<panic-on-drop@x>", Cut::Quit), closes(": closed").logged_together(" panicked", "fault injected: panic while the filter is dropped").alarms(1)),
        case("filter: panics while dropped at close", cut_short("<panic-on-drop@x>", Cut::Close), checked().logged_together(" panicked", "fault injected: panic while the filter is dropped").alarms(1)),
        case("filter: 10,000 edits", from("<edits-10000@x>"), answers("cc cccccc h{10001} a")),
        case("filter: edits beyond the queue limit", from("<edits-beyond-limit@x>"), answers("cc cccccc t").logged("filter failed").alarms(1).peak(64 << 20)),
        case("filter: a header edit over 64 KiB", from("<oversize-header-edit@x>"), answers("cc cccccc ha")),
        case("filter: a 64 MiB replacement body", script(huge_reply), answers("").peak(320 << 20)),
        case("log: a queue id with a line break", greeted(queue_id_with_newline), answers("t").logged_together("queue id Q1", "connection 999: forged line)").alarms(1)),
    ]
}

#[test]
fn hostile_inputs_get_the_catalogued_outcome_and_harm_nothing_else() {
    run_catalogue(&catalogue());
}
