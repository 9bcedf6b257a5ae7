//! Byte vectors from the protocol reference (`milter-protocol.md`), written one field per line:
//! the worked example session of §7 packet by packet, the `IPv6:` quirk, and the typed errors
//! for malformed input and for values that cannot be encoded.

mod common;

use async_milter::proto::{
    Actions, Command, DEFAULT_MAX_FRAME_LEN, DecodeError, EncodeError, Events, Family,
    FrameDecoder, MacroStage, Needs, OptNeg, OptNegReply, ProtocolFlags, ReplyCode, Response,
    WireStr, negotiate,
};
use common::{encode_command, encode_response};

// ===== helpers =====

/// A u32 field, big-endian.
fn be32(value: u32) -> [u8; 4] {
    value.to_be_bytes()
}

/// A u16 field, big-endian.
fn be16(value: u16) -> [u8; 2] {
    value.to_be_bytes()
}

/// Concatenates fields written one per line.
fn cat(fields: &[&[u8]]) -> Vec<u8> {
    fields.concat()
}

/// Parses a hex dump as printed in the reference (hex bytes separated by spaces).
fn hex(dump: &str) -> Vec<u8> {
    dump.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect()
}

/// Decodes the one command frame in `wire`.
fn command(wire: &[u8]) -> Command<'static> {
    let mut decoder = FrameDecoder::new();
    decoder.push(wire);
    let frame = decoder.decode().unwrap().expect("one whole frame");
    assert_eq!(decoder.buffered(), 0, "one frame only");
    // Leak the frame so the borrowed command can outlive this helper (tests only).
    let frame: &'static _ = Box::leak(Box::new(frame));
    Command::decode_frame(frame).unwrap()
}

/// Decodes the one response frame in `wire`.
fn response(wire: &[u8]) -> Response<'static> {
    let mut decoder = FrameDecoder::new();
    decoder.push(wire);
    let frame = decoder.decode().unwrap().expect("one whole frame");
    assert_eq!(decoder.buffered(), 0, "one frame only");
    let frame: &'static _ = Box::leak(Box::new(frame));
    Response::decode_frame(frame).unwrap()
}

fn continue_packet() -> Vec<u8> {
    cat(&[
        &be32(1), // length: the code byte only
        b"c",     // SMFIR_CONTINUE
    ])
}

// ===== §7 worked example, packet by packet =====

fn packet_1_optneg() -> Vec<u8> {
    cat(&[
        &be32(13),        // length: code + 3 × u32
        b"O",             // SMFIC_OPTNEG
        &be32(6),         // version
        &be32(0x1FF),     // actions: SMFI_CURR_ACTS
        &be32(0x1F_FFFF), // protocol: SMFI_CURR_PROT
    ])
}

#[test]
fn example_01_mta_optneg() {
    let wire = packet_1_optneg();
    assert_eq!(
        wire,
        hex("00 00 00 0d 4f 00 00 00 06 00 00 01 ff 00 1f ff ff")
    );
    let Command::OptNeg(offer) = command(&wire) else {
        panic!("not OPTNEG");
    };
    assert_eq!(offer.version, 6);
    assert_eq!(offer.actions, Actions::V6);
    assert_eq!(offer.protocol, ProtocolFlags::V6);
    assert_eq!(encode_command(&Command::OptNeg(offer)), wire);
}

#[test]
fn example_02_filter_optneg_reply() {
    let wire = cat(&[
        &be32(13),    // length
        b"O",         // the reply reuses the OPTNEG code
        &be32(6),     // version
        &be32(0x01),  // actions: SMFIF_ADDHDRS
        &be32(0x300), // protocol: SMFIP_NOUNKNOWN | SMFIP_NODATA
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 0d 4f 00 00 00 06 00 00 00 01 00 00 03 00")
    );

    let options = OptNeg {
        version: 6,
        actions: Actions::ADD_HEADERS,
        protocol: ProtocolFlags::NO_UNKNOWN | ProtocolFlags::NO_DATA,
    };
    assert_eq!(
        encode_response(&Response::OptNeg(OptNegReply::new(options, &[]))),
        wire
    );

    // The filter of the example: every event but DATA and UNKNOWN, answers all, adds headers.
    let needs = Needs::new()
        .actions(Actions::ADD_HEADERS)
        .events(Events::ALL - Events::DATA - Events::UNKNOWN)
        .answers(Events::ALL);
    let Command::OptNeg(offer) = command(&packet_1_optneg()) else {
        panic!("not OPTNEG");
    };
    let agreed = negotiate(offer, &needs).unwrap();
    let mut reply = Vec::new();
    agreed.encode_reply(&mut reply).unwrap();
    assert_eq!(reply, wire);

    let Response::OptNeg(decoded) = response(&wire) else {
        panic!("not an OPTNEG reply");
    };
    assert_eq!(decoded.options, options);
    assert_eq!(decoded.macro_requests().count(), 0);
}

#[test]
fn example_03_macro_connect() {
    let wire = cat(&[
        &be32(0x13),         // length 19
        b"D",                // SMFIC_MACRO
        b"C",                // for CONNECT
        b"j\0",              // name
        b"mx.example.net\0", // value
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 13 44 43 6a 00 6d 78 2e 65 78 61 6d 70 6c 65 2e 6e 65 74 00")
    );
    let Command::Macro(macros) = command(&wire) else {
        panic!("not MACRO");
    };
    assert_eq!(macros.command(), b'C');
    assert_eq!(
        macros.command_kind(),
        Some(async_milter::proto::CommandKind::Connect)
    );
    let pairs: Vec<_> = macros.pairs().collect();
    assert_eq!(
        pairs,
        [(WireStr::from("j"), WireStr::from("mx.example.net"))]
    );
    assert_eq!(encode_command(&Command::Macro(macros)), wire);
}

#[test]
fn example_04_connect() {
    let wire = cat(&[
        &be32(0x21),             // length 33
        b"C",                    // SMFIC_CONNECT
        b"client.example.com\0", // hostname
        b"4",                    // family: IPv4
        &be16(50000),            // port 0xc350
        b"192.0.2.1\0",          // address
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 21 43 63 6c 69 65 6e 74 2e 65 78 61 6d \
             70 6c 65 2e 63 6f 6d 00 34 c3 50 31 39 32 2e 30 \
             2e 32 2e 31 00")
    );
    let Command::Connect(connect) = command(&wire) else {
        panic!("not CONNECT");
    };
    assert_eq!(connect.hostname, "client.example.com");
    assert_eq!(connect.family, Family::Inet);
    assert_eq!(connect.port, 50000);
    assert_eq!(connect.address, "192.0.2.1");
    assert_eq!(connect.ip(), Some([192, 0, 2, 1].into()));
    assert_eq!(encode_command(&Command::Connect(connect)), wire);
}

#[test]
fn example_05_07_09_11_13_15_17_continue() {
    let wire = continue_packet();
    assert_eq!(wire, hex("00 00 00 01 63"));
    assert_eq!(response(&wire), Response::Continue);
    assert_eq!(encode_response(&Response::Continue), wire);
}

#[test]
fn example_06_helo() {
    let wire = cat(&[
        &be32(0x14),             // length 20
        b"H",                    // SMFIC_HELO
        b"client.example.com\0", // HELO argument
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 14 48 63 6c 69 65 6e 74 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00")
    );
    assert_eq!(command(&wire), Command::Helo("client.example.com".into()));
    assert_eq!(encode_command(&command(&wire)), wire);
}

#[test]
fn example_08_mail() {
    let wire = cat(&[
        &be32(0x23),              // length 35
        b"M",                     // SMFIC_MAIL
        b"<alice@example.com>\0", // argv[0]: the sender
        b"BODY=8BITMIME\0",       // argv[1]: one ESMTP parameter
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 23 4d 3c 61 6c 69 63 65 40 65 78 61 6d \
             70 6c 65 2e 63 6f 6d 3e 00 42 4f 44 59 3d 38 42 \
             49 54 4d 49 4d 45 00")
    );
    let Command::Mail(envelope) = command(&wire) else {
        panic!("not MAIL");
    };
    assert_eq!(envelope.address, "<alice@example.com>");
    assert_eq!(envelope.args().collect::<Vec<_>>(), ["BODY=8BITMIME"]);
    assert_eq!(encode_command(&Command::Mail(envelope)), wire);
}

#[test]
fn example_10_rcpt() {
    let wire = cat(&[
        &be32(0x13),            // length 19
        b"R",                   // SMFIC_RCPT
        b"<bob@example.net>\0", // argv[0]: the recipient, no parameters
    ]);
    assert_eq!(
        wire,
        hex("00 00 00 13 52 3c 62 6f 62 40 65 78 61 6d 70 6c 65 2e 6e 65 74 3e 00")
    );
    let Command::Rcpt(envelope) = command(&wire) else {
        panic!("not RCPT");
    };
    assert_eq!(envelope.address, "<bob@example.net>");
    assert_eq!(envelope.args().count(), 0);
    assert_eq!(encode_command(&Command::Rcpt(envelope)), wire);
}

#[test]
fn example_12_header() {
    let wire = cat(&[
        &be32(0x0c),  // length 12
        b"L",         // SMFIC_HEADER
        b"Subject\0", // name, no colon
        b"Hi\0",      // value, one leading space stripped by the MTA
    ]);
    assert_eq!(wire, hex("00 00 00 0c 4c 53 75 62 6a 65 63 74 00 48 69 00"));
    let Command::Header(header) = command(&wire) else {
        panic!("not HEADER");
    };
    assert_eq!((header.name, header.value), ("Subject".into(), "Hi".into()));
    assert_eq!(encode_command(&Command::Header(header)), wire);
}

#[test]
fn example_14_eoh_16_body_18_eom_21_quit() {
    let eoh = cat(&[&be32(1), b"N"]);
    assert_eq!(eoh, hex("00 00 00 01 4e"));
    assert_eq!(command(&eoh), Command::EndOfHeaders);

    let body = cat(&[
        &be32(8),     // length: code + 7 body bytes
        b"B",         // SMFIC_BODY
        b"Hello\r\n", // raw bytes, CRLF line ends
    ]);
    assert_eq!(body, hex("00 00 00 08 42 48 65 6c 6c 6f 0d 0a"));
    assert_eq!(command(&body), Command::Body(b"Hello\r\n"));

    let eom = cat(&[&be32(1), b"E"]);
    assert_eq!(eom, hex("00 00 00 01 45"));
    assert_eq!(command(&eom), Command::EndOfMessage(b""));

    let quit = cat(&[&be32(1), b"Q"]);
    assert_eq!(quit, hex("00 00 00 01 51"));
    assert_eq!(command(&quit), Command::Quit);

    for (wire, value) in [
        (eoh, Command::EndOfHeaders),
        (body, Command::Body(b"Hello\r\n")),
        (eom, Command::EndOfMessage(b"")),
        (quit, Command::Quit),
    ] {
        assert_eq!(encode_command(&value), wire);
    }
}

#[test]
fn example_19_addheader_20_accept() {
    let add = cat(&[
        &be32(0x10),     // length 16
        b"h",            // SMFIR_ADDHEADER
        b"X-Filtered\0", // name
        b"yes\0",        // value
    ]);
    assert_eq!(
        add,
        hex("00 00 00 10 68 58 2d 46 69 6c 74 65 72 65 64 00 79 65 73 00")
    );
    let value = Response::AddHeader {
        name: "X-Filtered".into(),
        value: "yes".into(),
    };
    assert_eq!(encode_response(&value), add);
    assert_eq!(response(&add), value);

    let accept = cat(&[&be32(1), b"a"]);
    assert_eq!(accept, hex("00 00 00 01 61"));
    assert_eq!(encode_response(&Response::Accept), accept);
    assert_eq!(response(&accept), Response::Accept);
}

/// The MTA's packets of §7 as one stream decode in order, and so do the filter's.
#[test]
fn example_session_as_streams() {
    let mta = hex("00 00 00 0d 4f 00 00 00 06 00 00 01 ff 00 1f ff ff \
         00 00 00 13 44 43 6a 00 6d 78 2e 65 78 61 6d 70 6c 65 2e 6e 65 74 00 \
         00 00 00 21 43 63 6c 69 65 6e 74 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 \
         34 c3 50 31 39 32 2e 30 2e 32 2e 31 00 \
         00 00 00 14 48 63 6c 69 65 6e 74 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 \
         00 00 00 23 4d 3c 61 6c 69 63 65 40 65 78 61 6d 70 6c 65 2e 63 6f 6d 3e 00 \
         42 4f 44 59 3d 38 42 49 54 4d 49 4d 45 00 \
         00 00 00 13 52 3c 62 6f 62 40 65 78 61 6d 70 6c 65 2e 6e 65 74 3e 00 \
         00 00 00 0c 4c 53 75 62 6a 65 63 74 00 48 69 00 \
         00 00 00 01 4e \
         00 00 00 08 42 48 65 6c 6c 6f 0d 0a \
         00 00 00 01 45 \
         00 00 00 01 51");
    let mut decoder = FrameDecoder::new();
    decoder.push(&mta);
    let mut kinds: Vec<u8> = Vec::new();
    while let Some(frame) = decoder.decode().unwrap() {
        kinds.push(Command::decode_frame(&frame).unwrap().kind().into());
    }
    assert_eq!(kinds, b"ODCHMRLNBEQ".to_vec());

    let mut filter = Vec::new();
    for reply in [
        Response::OptNeg(OptNegReply::new(
            OptNeg {
                version: 6,
                actions: Actions::ADD_HEADERS,
                protocol: ProtocolFlags::from_bits(0x300),
            },
            &[],
        )),
        Response::Continue, // CONNECT
        Response::Continue, // HELO
        Response::Continue, // MAIL
        Response::Continue, // RCPT
        Response::Continue, // HEADER
        Response::Continue, // EOH
        Response::Continue, // BODY
        Response::AddHeader {
            name: "X-Filtered".into(),
            value: "yes".into(),
        },
        Response::Accept,
    ] {
        reply.encode(&mut filter).unwrap();
    }
    let expected = hex("00 00 00 0d 4f 00 00 00 06 00 00 00 01 00 00 03 00 \
         00 00 00 01 63 00 00 00 01 63 00 00 00 01 63 00 00 00 01 63 \
         00 00 00 01 63 00 00 00 01 63 00 00 00 01 63 \
         00 00 00 10 68 58 2d 46 69 6c 74 65 72 65 64 00 79 65 73 00 \
         00 00 00 01 61");
    assert_eq!(filter, expected);
}

/// Postfix's extras on the same session: bare MACRO packets (length 2) and ABORT.
#[test]
fn postfix_bare_macro_and_abort() {
    for code in [b'H', b'M', b'R', b'T', b'L', b'N', b'B', b'E'] {
        let wire = cat(&[
            &be32(2), // length: D + cmdcode
            b"D",     // SMFIC_MACRO
            &[code],  // the command that follows
        ]);
        assert_eq!(wire, hex(&format!("00 00 00 02 44 {code:02x}")));
        let Command::Macro(macros) = command(&wire) else {
            panic!("not MACRO");
        };
        assert_eq!(macros.command(), code);
        assert!(macros.is_empty());
        assert_eq!(encode_command(&Command::Macro(macros)), wire);
    }
    let abort = cat(&[&be32(1), b"A"]);
    assert_eq!(abort, hex("00 00 00 01 41"));
    assert_eq!(command(&abort), Command::Abort);
}

/// §7, other libmilter results: `smfi_setsymlist(SMFIM_ENVRCPT, "{rcpt_addr} i")` and
/// `smfi_setsymlist(SMFIM_EOM, "")` append `00 00 00 03 "{rcpt_addr} i" 00 00 00 00 05 00`.
#[test]
fn optneg_reply_with_macro_requests() {
    let wire = cat(&[
        &be32(13 + 4 + 14 + 4 + 1), // length
        b"O",                       // OPTNEG reply
        &be32(6),                   // version
        &be32(0x101),               // actions: ADDHDRS | SETSYMLIST
        &be32(0),                   // protocol
        &be32(3),                   // stage SMFIM_ENVRCPT
        b"{rcpt_addr} i\0",         // names
        &be32(5),                   // stage SMFIM_EOM
        b"\0",                      // an empty list is a lone NUL
    ]);
    let requests = [
        (MacroStage::Rcpt, WireStr::from("{rcpt_addr} i")),
        (MacroStage::EndOfMessage, WireStr::from("")),
    ];
    let value = Response::OptNeg(OptNegReply::new(
        OptNeg {
            version: 6,
            actions: Actions::ADD_HEADERS | Actions::SET_MACRO_LIST,
            protocol: ProtocolFlags::EMPTY,
        },
        &requests,
    ));
    assert_eq!(encode_response(&value), wire);
    let Response::OptNeg(decoded) = response(&wire) else {
        panic!("not an OPTNEG reply");
    };
    assert_eq!(decoded.macro_requests().collect::<Vec<_>>(), requests);
}

/// §7: `smfi_setmlreply(ctx, "550", "5.7.1", "line one", "line two 100%%", NULL)`.
#[test]
fn multi_line_reply_code() {
    let text = ReplyCode::permanent(550, "5.7.1", "line one")
        .unwrap()
        .with_line("line two 100%")
        .unwrap()
        .to_wire();
    let wire = cat(&[
        &be32(1 + 20 + 25),            // length
        b"y",                          // SMFIR_REPLYCODE
        b"550-5.7.1 line one\r\n",     // first line, `-` continues
        b"550 5.7.1 line two 100%%\0", // last line, `%` doubled, NUL
    ]);
    assert_eq!(
        encode_response(&Response::ReplyCode(WireStr::from(&text[..]))),
        wire
    );
    assert_eq!(
        response(&wire),
        Response::ReplyCode(WireStr::from(&text[..]))
    );
}

// ===== CONNECT quirks =====

fn connect_packet(hostname: &[u8], family: u8, port: u16, address: &[u8]) -> Vec<u8> {
    let payload = cat(&[
        hostname,    // hostname
        b"\0",       //   its NUL
        &[family],   // family
        &be16(port), // port
        address,     // address
        b"\0",       //   its NUL
    ]);
    cat(&[&be32(payload.len() as u32 + 1), b"C", &payload])
}

/// Sendmail sends `IPv6:2001:db8::1`; libmilter strips the prefix, in any case.
#[test]
fn sendmail_ipv6_prefix_is_stripped_case_insensitively() {
    for prefix in ["IPv6:", "ipv6:", "IPV6:", "iPv6:"] {
        for address in ["2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"] {
            let on_wire = format!("{prefix}{address}");
            let wire = connect_packet(b"[IPv6:2001:db8::1]", b'6', 25, on_wire.as_bytes());
            let Command::Connect(connect) = command(&wire) else {
                panic!("not CONNECT");
            };
            // The hostname is not an address: it stays as sent.
            assert_eq!(connect.hostname, "[IPv6:2001:db8::1]");
            assert_eq!(connect.family, Family::Inet6);
            assert_eq!(connect.port, 25);
            assert_eq!(connect.address, address);
            assert_eq!(connect.ip(), Some("2001:db8::1".parse().unwrap()));
            // Re-encoding sends the address without the prefix.
            let plain = connect_packet(b"[IPv6:2001:db8::1]", b'6', 25, address.as_bytes());
            assert_eq!(encode_command(&Command::Connect(connect)), plain);
        }
    }
    // Postfix sends plain text, which stays as it is.
    let wire = connect_packet(b"mail.example.org", b'6', 40000, b"2001:db8::25");
    let Command::Connect(connect) = command(&wire) else {
        panic!("not CONNECT");
    };
    assert_eq!(connect.address, "2001:db8::25");
    assert_eq!(encode_command(&Command::Connect(connect)), wire);
}

/// Postfix sends `[address]` as the hostname when the client has no verified name.
#[test]
fn postfix_bracketed_hostname_is_kept() {
    let wire = connect_packet(b"[192.0.2.1]", b'4', 50000, b"192.0.2.1");
    let Command::Connect(connect) = command(&wire) else {
        panic!("not CONNECT");
    };
    assert_eq!(connect.hostname, "[192.0.2.1]");
    assert_eq!(connect.address, "192.0.2.1");
    assert_eq!(encode_command(&Command::Connect(connect)), wire);
}

// ===== decoding errors =====

#[test]
fn zero_length_frame_is_refused() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&cat(&[
        &be32(0), // length 0: not even a code byte
        b"A",
    ]));
    assert_eq!(decoder.decode(), Err(DecodeError::EmptyFrame));
}

#[test]
fn oversize_frame_is_refused_before_its_payload() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&be32(DEFAULT_MAX_FRAME_LEN + 1));
    assert_eq!(
        decoder.decode(),
        Err(DecodeError::FrameTooLong {
            len: DEFAULT_MAX_FRAME_LEN + 1,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    let mut small = FrameDecoder::with_max_len(100);
    small.push(&cat(&[&be32(101), b"B"]));
    assert_eq!(
        small.decode(),
        Err(DecodeError::FrameTooLong { len: 101, max: 100 })
    );
}

/// Postfix sends headers up to `header_size_limit` (100 KiB) as one packet: accepted.
#[test]
fn header_over_64k_is_accepted() {
    let value = vec![b'v'; 102_400];
    let wire = cat(&[
        &be32(1 + 6 + 102_400 + 1), // length
        b"L",                       // SMFIC_HEADER
        b"X-Big\0",                 // name
        &value,                     // value
        b"\0",                      //   its NUL
    ]);
    let Command::Header(header) = command(&wire) else {
        panic!("not HEADER");
    };
    assert_eq!(header.value.len(), 102_400);
    assert_eq!(encode_command(&Command::Header(header)), wire);
}

#[test]
fn unknown_codes_are_refused() {
    // `c` is a response, not a command; `Z` is nothing.
    for code in [b'Z', b'c', b'l', 0x00, 0x1f, 0xff] {
        assert_eq!(
            Command::decode(code, b""),
            Err(DecodeError::UnknownCommand(code))
        );
    }
    // SETSYMLIST `l` and CONN_FAIL `f` are never sent as packets; `C` is a command.
    for code in [b'l', b'f', b'C', b'Z'] {
        assert_eq!(
            Response::decode(code, b""),
            Err(DecodeError::UnknownResponse(code))
        );
    }
}

#[test]
fn unknown_family_is_refused() {
    let payload = cat(&[
        b"host\0", // hostname
        b"X",      // family: not U, L, 4 or 6
        &be16(25), // port
        b"addr\0", // address
    ]);
    assert_eq!(
        Command::decode(b'C', &payload),
        Err(DecodeError::UnknownFamily(b'X'))
    );
}

#[test]
fn macro_with_odd_count_is_refused() {
    let payload = cat(&[
        b"C",                // cmdcode
        b"j\0",              // name
        b"mx.example.net\0", // value
        b"_\0",              // a name without a value
    ]);
    assert_eq!(
        Command::decode(b'D', &payload),
        Err(DecodeError::UnpairedMacro)
    );
}

#[test]
fn missing_nul_is_truncated() {
    let truncated = |packet, field| DecodeError::Truncated { packet, field };
    assert_eq!(
        Command::decode(b'H', b"client").unwrap_err(),
        truncated("HELO", "name")
    );
    assert_eq!(
        Command::decode(b'U', b"XFOO").unwrap_err(),
        truncated("UNKNOWN", "command")
    );
    assert_eq!(
        Command::decode(b'L', &cat(&[b"Subject\0", b"Hi"])).unwrap_err(),
        truncated("HEADER", "value")
    );
    assert_eq!(
        Command::decode(b'D', &cat(&[b"C", b"j\0", b"mx"])).unwrap_err(),
        truncated("MACRO", "macro pair")
    );
    assert_eq!(
        Command::decode(b'M', &cat(&[b"<a@b>\0", b"SIZE=1"])).unwrap_err(),
        truncated("MAIL", "ESMTP argument")
    );
    assert_eq!(
        Command::decode(b'C', &cat(&[b"host\0", b"4", &be16(25), b"192.0.2.1"])).unwrap_err(),
        truncated("CONNECT", "address")
    );
    assert_eq!(
        Command::decode(b'C', b"host\0").unwrap_err(),
        truncated("CONNECT", "family")
    );
    assert_eq!(
        Command::decode(b'C', &cat(&[b"host\0", b"4", &[0]])).unwrap_err(),
        truncated("CONNECT", "port")
    );
    assert_eq!(
        Command::decode(b'O', &cat(&[&be32(6), &be32(0x1FF), &[0, 0]])).unwrap_err(),
        truncated("OPTNEG", "protocol")
    );
    assert_eq!(
        Response::decode(b'q', b"spam").unwrap_err(),
        truncated("QUARANTINE", "reason")
    );
    assert_eq!(
        Response::decode(b'i', &[0, 0, 1]).unwrap_err(),
        truncated("INSHEADER", "index")
    );
}

#[test]
fn trailing_data_is_refused() {
    let trailing = |packet| DecodeError::TrailingData { packet };
    for (code, packet) in [
        (b'T', "DATA"),
        (b'N', "EOH"),
        (b'A', "ABORT"),
        (b'Q', "QUIT"),
        (b'K', "QUIT_NC"),
    ] {
        assert_eq!(Command::decode(code, b"x").unwrap_err(), trailing(packet));
        assert_eq!(Command::decode(code, b"\0").unwrap_err(), trailing(packet));
    }
    assert_eq!(
        Command::decode(b'H', b"a\0b\0").unwrap_err(),
        trailing("HELO")
    );
    assert_eq!(
        Command::decode(
            b'O',
            &cat(&[&be32(6), &be32(0x1FF), &be32(0x1F_FFFF), b"x"])
        )
        .unwrap_err(),
        trailing("OPTNEG")
    );
    assert_eq!(
        Command::decode(b'C', b"unknown\0U\0\0").unwrap_err(),
        trailing("CONNECT"),
        "family U carries no port and no address"
    );
    assert_eq!(
        Response::decode(b'c', b"x").unwrap_err(),
        trailing("CONTINUE")
    );
    assert_eq!(
        Response::decode(b'e', b"<a>\0RET=HDRS\0x\0").unwrap_err(),
        trailing("CHGFROM")
    );
}

#[test]
fn empty_mail_or_rcpt_is_refused() {
    assert_eq!(
        Command::decode(b'M', b""),
        Err(DecodeError::MissingAddress { packet: "MAIL" })
    );
    assert_eq!(
        Command::decode(b'R', b""),
        Err(DecodeError::MissingAddress { packet: "RCPT" })
    );
}

#[test]
fn unknown_macro_stage_in_optneg_reply_is_refused() {
    let payload = cat(&[
        &be32(6),     // version
        &be32(0x100), // actions
        &be32(0),     // protocol
        &be32(7),     // stage: no SMFIM_* has this value
        b"i\0",       // names
    ]);
    assert_eq!(
        Response::decode(b'O', &payload),
        Err(DecodeError::UnknownMacroStage(7))
    );
}

// ===== encoding errors =====

/// Encodes into a buffer that already holds bytes, checking an error leaves them untouched.
fn encode_error_command(value: &Command<'_>) -> EncodeError {
    let mut dst = b"earlier".to_vec();
    let error = value.encode(&mut dst).unwrap_err();
    assert_eq!(
        dst, b"earlier",
        "a failed encode must leave the buffer as it was"
    );
    error
}

fn encode_error_response(value: &Response<'_>) -> EncodeError {
    let mut dst = b"earlier".to_vec();
    let error = value.encode(&mut dst).unwrap_err();
    assert_eq!(
        dst, b"earlier",
        "a failed encode must leave the buffer as it was"
    );
    error
}

#[test]
fn interior_nul_is_refused() {
    assert_eq!(
        encode_error_command(&Command::Helo(WireStr::new(b"a\0b"))),
        EncodeError::InteriorNul { field: "HELO name" }
    );
    assert_eq!(
        encode_error_response(&Response::AddHeader {
            name: "X-A".into(),
            value: WireStr::new(b"bad\0value"),
        }),
        EncodeError::InteriorNul {
            field: "header value"
        }
    );
    assert_eq!(
        encode_error_response(&Response::ReplyCode(WireStr::new(b"550 5.7.1 \0"))),
        EncodeError::InteriorNul { field: "reply" }
    );
}

#[test]
fn empty_header_name_or_quarantine_reason_is_refused() {
    let empty_name = EncodeError::Empty {
        field: "header name",
    };
    assert_eq!(
        encode_error_response(&Response::AddHeader {
            name: "".into(),
            value: "v".into(),
        }),
        empty_name
    );
    assert_eq!(
        encode_error_response(&Response::InsertHeader {
            index: 0,
            name: "".into(),
            value: "v".into(),
        }),
        empty_name
    );
    assert_eq!(
        encode_error_response(&Response::ChangeHeader {
            index: 1,
            name: "".into(),
            value: "".into(),
        }),
        empty_name
    );
    assert_eq!(
        encode_error_response(&Response::Quarantine("".into())),
        EncodeError::Empty {
            field: "quarantine reason"
        }
    );
}

#[test]
fn response_payload_over_65535_is_refused() {
    let body = vec![b'x'; 65_536];
    assert_eq!(
        encode_error_response(&Response::ReplaceBody(&body)),
        EncodeError::TooLong {
            len: 65_536,
            max: 65_535
        }
    );
    // "X\0" + value + "\0" = 65536 bytes.
    let value = vec![b'v'; 65_533];
    assert_eq!(
        encode_error_response(&Response::AddHeader {
            name: "X".into(),
            value: WireStr::new(&value),
        }),
        EncodeError::TooLong {
            len: 65_536,
            max: 65_535
        }
    );
    // One byte less fits.
    let mut wire = Vec::new();
    Response::ReplaceBody(&body[1..]).encode(&mut wire).unwrap();
    assert_eq!(wire.len(), 4 + 1 + 65_535);
}
