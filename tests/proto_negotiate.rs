//! Negotiation table: real MTA offers (protocol reference §3.2) against filter needs, with the
//! reply each must produce, and the rules every reply obeys (§3.1, §8): version
//! `min(6, offered)`, actions and protocol a subset of the offer, `NO_*`/`NR_*` bits only
//! where offered, macro lists only with `SET_MACRO_LIST`.

use async_milter::fuzzing::negotiate_input;
use async_milter::proto::{
    Actions, Agreed, CommandKind, Events, MacroStage, Needs, NegotiateError, OptNeg, ProtocolFlags,
    negotiate,
};

mod common;
use common::Rng;

const fn offer(version: u32, actions: u32, protocol: u32) -> OptNeg {
    OptNeg {
        version,
        actions: Actions::from_bits(actions),
        protocol: ProtocolFlags::from_bits(protocol),
    }
}

// §3.2: what the MTAs offer.
const POSTFIX_3_7: OptNeg = offer(6, 0x1FF, 0x1F_FFFF);
const SENDMAIL_8_17: OptNeg = offer(6, 0x1FF, 0x1F_FFFF);
/// Sendmail built with `_FFR_MDS_NEGOTIATE` and `Milter.maxdatasize` set.
const SENDMAIL_MDS: OptNeg = offer(6, 0x1FF, 0x1F_FFFF | 0x1000_0000);
const POSTFIX_PROTOCOL_4: OptNeg = offer(4, 0x1FF, 0x37F);
const POSTFIX_PROTOCOL_3: OptNeg = offer(3, 0x1FF, 0x17F);
const POSTFIX_PROTOCOL_2: OptNeg = offer(2, 0x1FF, 0x7F);
/// A version 2 MTA (Sendmail 8.12): `SMFI_V2_ACTS`, `SMFI_V2_PROT`.
const VERSION_2_MTA: OptNeg = offer(2, 0x3F, 0x7F);
/// Sendmail 8.13: version 2 with the `SMFIP_NOHREPL` extension.
const SENDMAIL_8_13: OptNeg = offer(2, 0x3F, 0xFF);
const VERSION_1_MTA: OptNeg = offer(1, 0x0F, 0x3F);
/// An MTA sending zero for both sets: libmilter reads them as the version 1 sets.
const EMPTY_OFFER: OptNeg = offer(6, 0, 0);

/// Actions that exist only from version 6 (§3.3).
const V6_ONLY_ACTIONS: Actions =
    Actions::from_bits(Actions::CHANGE_FROM.bits() | Actions::ADD_RCPT_WITH_ARGS.bits());

fn needs() -> Needs {
    every_event()
}

/// The expected outcome of one row.
#[derive(Debug)]
struct Reply {
    version: u32,
    actions: Actions,
    protocol: ProtocolFlags,
    missing_actions: Actions,
    missing_events: Events,
    missing_options: ProtocolFlags,
}

fn check(name: &str, offer: OptNeg, needs: &Needs, expected: &Reply) -> Agreed {
    let agreed = negotiate(offer, needs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(agreed.offer, offer, "{name}");
    assert_eq!(agreed.options.version, expected.version, "{name}: version");
    assert_eq!(agreed.options.actions, expected.actions, "{name}: actions");
    assert_eq!(
        agreed.options.protocol, expected.protocol,
        "{name}: protocol"
    );
    assert_eq!(
        agreed.missing_actions, expected.missing_actions,
        "{name}: missing actions"
    );
    assert_eq!(
        agreed.missing_events, expected.missing_events,
        "{name}: missing events"
    );
    assert_eq!(
        agreed.missing_options, expected.missing_options,
        "{name}: missing options"
    );
    // Every property the fuzz target checks holds here too.
    async_milter::fuzzing::negotiate(&negotiate_input(offer, needs));
    agreed
}

#[test]
fn version_6_mtas_with_everything() {
    // `Needs::everything()`: every event, every answer, every action but SET_MACRO_LIST if offered,
    // and SKIP.
    let expected = Reply {
        version: 6,
        actions: Actions::V6 - Actions::SET_MACRO_LIST,
        protocol: ProtocolFlags::SKIP,
        missing_actions: Actions::EMPTY,
        missing_events: Events::EMPTY,
        missing_options: ProtocolFlags::EMPTY,
    };
    check("Postfix 3.7", POSTFIX_3_7, &needs(), &expected);
    check("Sendmail 8.17", SENDMAIL_8_17, &needs(), &expected);
    // The MDS bit is never echoed: we do not handle larger payloads.
    let agreed = check("Sendmail with MDS", SENDMAIL_MDS, &needs(), &expected);
    assert!(
        !agreed
            .options
            .protocol
            .intersects(ProtocolFlags::MAX_DATA_256K | ProtocolFlags::MAX_DATA_1M)
    );
}

#[test]
fn postfix_with_older_milter_protocol() {
    // Postfix offers 0x1FF actions at every version; CHGFROM and ADDRCPT_PAR are version 6.
    let v4 = check(
        "milter_protocol=4",
        POSTFIX_PROTOCOL_4,
        &needs(),
        &Reply {
            version: 4,
            actions: Actions::V2,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(v4.sends(Events::DATA) && v4.sends(Events::UNKNOWN));
    // No UNKNOWN below version 3, no DATA below 4.
    let v3 = check(
        "milter_protocol=3",
        POSTFIX_PROTOCOL_3,
        &needs(),
        &Reply {
            version: 3,
            actions: Actions::V2,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::DATA,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(!v3.sends(Events::DATA) && v3.sends(Events::UNKNOWN));
    let v2 = check(
        "milter_protocol=2",
        POSTFIX_PROTOCOL_2,
        &needs(),
        &Reply {
            version: 2,
            actions: Actions::V2,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::DATA | Events::UNKNOWN,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(!v2.sends(Events::DATA) && !v2.sends(Events::UNKNOWN) && v2.sends(Events::BODY));
}

#[test]
fn version_2_mta() {
    let agreed = check(
        "version 2",
        VERSION_2_MTA,
        &needs(),
        &Reply {
            version: 2,
            actions: Actions::V2,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::DATA | Events::UNKNOWN,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(agreed.allows(Actions::ADD_HEADERS | Actions::QUARANTINE));
    assert!(!agreed.allows(Actions::CHANGE_FROM));
}

#[test]
fn version_1_mta_is_refused() {
    assert_eq!(
        negotiate(VERSION_1_MTA, &needs()),
        Err(NegotiateError::UnsupportedVersion(1))
    );
    assert_eq!(
        negotiate(offer(0, 0x1FF, 0x1F_FFFF), &needs()),
        Err(NegotiateError::UnsupportedVersion(0))
    );
}

#[test]
fn missing_required_actions_are_named_exactly() {
    let mut wants = needs();
    wants = wants.actions(Actions::ADD_HEADERS | Actions::CHANGE_BODY | Actions::QUARANTINE);
    assert_eq!(
        negotiate(offer(6, 0x03, 0x1F_FFFF), &wants),
        Err(NegotiateError::MissingActions(Actions::QUARANTINE))
    );
    wants = wants.actions(Actions::V6);
    assert_eq!(
        negotiate(offer(6, 0x0F, 0x1F_FFFF), &wants),
        Err(NegotiateError::MissingActions(Actions::from_bits(0x1F0)))
    );
    // CHGFROM exists only from version 6, whatever Postfix puts in its actions.
    wants = wants.actions(Actions::ADD_HEADERS | Actions::CHANGE_FROM);
    assert_eq!(
        negotiate(POSTFIX_PROTOCOL_4, &wants),
        Err(NegotiateError::MissingActions(Actions::CHANGE_FROM))
    );
    // Granted when offered.
    let agreed = negotiate(POSTFIX_3_7, &wants).unwrap();
    assert!(agreed.allows(Actions::ADD_HEADERS | Actions::CHANGE_FROM));
}

#[test]
fn empty_offer_reads_as_the_version_1_sets() {
    // libmilter replaces 0 actions with SMFI_V1_ACTS (0x0F) and 0 protocol with
    // SMFI_V1_PROT (0x3F).
    check(
        "empty offer",
        EMPTY_OFFER,
        &needs(),
        &Reply {
            version: 6,
            actions: Actions::V1,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: (Actions::V6 - Actions::SET_MACRO_LIST) - Actions::V1,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    // NO_HELO and NO_BODY are version 1 bits; NO_EOH (0x40) is not, nor any NR bit.
    let mut wants = needs();
    wants = wants.events(Events::ALL - Events::HELO - Events::BODY - Events::EOH);
    let agreed = check(
        "empty offer, fewer events",
        EMPTY_OFFER,
        &wants,
        &Reply {
            version: 6,
            actions: Actions::V1,
            protocol: ProtocolFlags::NO_HELO | ProtocolFlags::NO_BODY,
            missing_actions: (Actions::V6 - Actions::SET_MACRO_LIST) - Actions::V1,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(agreed.sends(Events::EOH) && !agreed.sends(Events::HELO));
    assert!(agreed.expects_reply(CommandKind::EndOfHeaders));
    // A required action of the version 1 set is granted; one outside it is refused.
    wants = wants.actions(Actions::ADD_HEADERS);
    assert!(negotiate(EMPTY_OFFER, &wants).is_ok());
    wants = wants.actions(Actions::CHANGE_HEADERS);
    assert_eq!(
        negotiate(EMPTY_OFFER, &wants),
        Err(NegotiateError::MissingActions(Actions::CHANGE_HEADERS))
    );
}

#[test]
fn missing_optional_actions_are_recorded_not_fatal() {
    let mut wants = needs();
    wants =
        wants.optional_actions(Actions::ADD_HEADERS | Actions::CHANGE_BODY | Actions::QUARANTINE);
    check(
        "optional",
        offer(6, 0x21, 0x1F_FFFF),
        &wants,
        &Reply {
            version: 6,
            actions: Actions::ADD_HEADERS | Actions::QUARANTINE,
            protocol: ProtocolFlags::SKIP,
            missing_actions: Actions::CHANGE_BODY,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::EMPTY,
        },
    );
}

#[test]
fn events_not_needed_are_suppressed_only_where_offered() {
    let mut wants = needs();
    wants = wants.events(Events::MAIL | Events::RCPT | Events::BODY);
    let suppressed = ProtocolFlags::NO_CONNECT
        | ProtocolFlags::NO_HELO
        | ProtocolFlags::NO_DATA
        | ProtocolFlags::NO_HEADER
        | ProtocolFlags::NO_EOH
        | ProtocolFlags::NO_UNKNOWN;
    let agreed = check(
        "version 6",
        POSTFIX_3_7,
        &wants,
        &Reply {
            version: 6,
            actions: Actions::V6 - Actions::SET_MACRO_LIST,
            protocol: suppressed | ProtocolFlags::SKIP,
            missing_actions: Actions::EMPTY,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::EMPTY,
        },
    );
    for event in [Events::MAIL, Events::RCPT, Events::BODY] {
        assert!(agreed.sends(event), "{event:?}");
    }
    for event in [
        Events::CONNECT,
        Events::HELO,
        Events::DATA,
        Events::HEADER,
        Events::EOH,
        Events::UNKNOWN,
    ] {
        assert!(!agreed.sends(event), "{event:?}");
    }

    // An MTA offering only the version 1 bits: DATA, EOH and UNKNOWN cannot be suppressed.
    let agreed = check(
        "only version 1 bits offered",
        offer(6, 0x1FF, 0x3F),
        &wants,
        &Reply {
            version: 6,
            actions: Actions::V6 - Actions::SET_MACRO_LIST,
            protocol: ProtocolFlags::NO_CONNECT | ProtocolFlags::NO_HELO | ProtocolFlags::NO_HEADER,
            missing_actions: Actions::EMPTY,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(agreed.sends(Events::DATA) && agreed.sends(Events::EOH));
    assert!(agreed.expects_reply(CommandKind::EndOfHeaders));

    // Not suppressible but offered as no-reply: at least the MTA does not wait.
    let agreed = check(
        "NR instead of NO",
        offer(
            6,
            0x1FF,
            0x3F | ProtocolFlags::NR_EOH.bits() | ProtocolFlags::NR_DATA.bits(),
        ),
        &wants,
        &Reply {
            version: 6,
            actions: Actions::V6 - Actions::SET_MACRO_LIST,
            protocol: ProtocolFlags::NO_CONNECT
                | ProtocolFlags::NO_HELO
                | ProtocolFlags::NO_HEADER
                | ProtocolFlags::NR_EOH
                | ProtocolFlags::NR_DATA,
            missing_actions: Actions::EMPTY,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(agreed.sends(Events::EOH));
    assert!(!agreed.expects_reply(CommandKind::EndOfHeaders));
    assert!(!agreed.expects_reply(CommandKind::Data));
    assert!(agreed.expects_reply(CommandKind::Unknown));
}

#[test]
fn events_not_answered_are_no_reply_only_where_offered() {
    let mut wants = needs();
    wants = wants.answers(Events::CONNECT | Events::MAIL);
    let no_reply = ProtocolFlags::NR_HELO
        | ProtocolFlags::NR_RCPT
        | ProtocolFlags::NR_DATA
        | ProtocolFlags::NR_HEADER
        | ProtocolFlags::NR_EOH
        | ProtocolFlags::NR_BODY
        | ProtocolFlags::NR_UNKNOWN;
    let agreed = check(
        "version 6",
        SENDMAIL_8_17,
        &wants,
        &Reply {
            version: 6,
            actions: Actions::V6 - Actions::SET_MACRO_LIST,
            protocol: no_reply | ProtocolFlags::SKIP,
            missing_actions: Actions::EMPTY,
            missing_events: Events::EMPTY,
            missing_options: ProtocolFlags::EMPTY,
        },
    );
    let replies: Vec<_> = CommandKind::ALL
        .into_iter()
        .filter(|&c| agreed.expects_reply(c))
        .collect();
    // OPTNEG, CONNECT, MAIL and end of message are answered; nothing else.
    assert_eq!(
        replies,
        [
            CommandKind::Connect,
            CommandKind::EndOfMessage,
            CommandKind::Mail,
            CommandKind::OptNeg
        ]
    );
    // Every event is still sent.
    assert!(
        Events::FLAGS
            .iter()
            .all(|&(event, _, _)| agreed.sends(event))
    );

    // A version 2 MTA offers no NR bit: every event is answered.
    let agreed = check(
        "version 2",
        VERSION_2_MTA,
        &wants,
        &Reply {
            version: 2,
            actions: Actions::V2,
            protocol: ProtocolFlags::EMPTY,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::DATA | Events::UNKNOWN,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(agreed.expects_reply(CommandKind::Helo) && agreed.expects_reply(CommandKind::Header));
    // Sendmail 8.13 offers SMFIP_NOHREPL: headers go unanswered, the rest is answered.
    let agreed = check(
        "Sendmail 8.13",
        SENDMAIL_8_13,
        &wants,
        &Reply {
            version: 2,
            actions: Actions::V2,
            protocol: ProtocolFlags::NR_HEADER,
            missing_actions: V6_ONLY_ACTIONS,
            missing_events: Events::DATA | Events::UNKNOWN,
            missing_options: ProtocolFlags::SKIP,
        },
    );
    assert!(!agreed.expects_reply(CommandKind::Header) && agreed.expects_reply(CommandKind::Helo));
}

#[test]
fn commands_without_reply_never_expect_one() {
    let agreed = negotiate(POSTFIX_3_7, &needs()).unwrap();
    for command in [
        CommandKind::Abort,
        CommandKind::Macro,
        CommandKind::Quit,
        CommandKind::QuitNewConnection,
    ] {
        assert!(!agreed.expects_reply(command), "{command:?}");
    }
    for command in [
        CommandKind::OptNeg,
        CommandKind::EndOfMessage,
        CommandKind::Body,
        CommandKind::Header,
    ] {
        assert!(agreed.expects_reply(command), "{command:?}");
    }
}

#[test]
fn extra_options_only_where_offered() {
    let mut wants = needs();
    wants = wants.options(
        ProtocolFlags::SKIP
            | ProtocolFlags::HEADER_LEADING_SPACE
            | ProtocolFlags::RCPT_REJECTED
            | ProtocolFlags::MAX_DATA_1M,
    );
    let agreed = negotiate(offer(6, 0x1FF, 0x1F_FFFF | 0x2000_0000), &wants).unwrap();
    assert_eq!(
        agreed.options.protocol,
        ProtocolFlags::SKIP | ProtocolFlags::HEADER_LEADING_SPACE | ProtocolFlags::RCPT_REJECTED
    );
    let agreed = negotiate(POSTFIX_PROTOCOL_4, &wants).unwrap();
    assert_eq!(agreed.options.protocol, ProtocolFlags::EMPTY);
    assert_eq!(
        agreed.missing_options,
        ProtocolFlags::SKIP | ProtocolFlags::HEADER_LEADING_SPACE | ProtocolFlags::RCPT_REJECTED
    );
}

fn with_macros(list: &[(MacroStage, &str)]) -> Needs {
    list.iter()
        .fold(needs(), |wants, (stage, names)| wants.macros(*stage, names))
}

/// Macro lists per stage, as written in a table.
type Lists<'a> = &'a [(MacroStage, &'a str)];

fn owned(list: Lists<'_>) -> Vec<(MacroStage, String)> {
    list.iter().map(|(s, n)| (*s, (*n).to_owned())).collect()
}

#[test]
fn macro_requests_need_set_macro_list() {
    let wants = with_macros(&[(MacroStage::Rcpt, "{rcpt_addr} i")]);
    let agreed = negotiate(POSTFIX_3_7, &wants).unwrap();
    assert!(agreed.allows(Actions::SET_MACRO_LIST));
    assert_eq!(agreed.macros, wants.get_macros());
    assert!(agreed.missing_actions.is_empty());

    // Not offered: neither the flag nor the lists, and the flag is reported missing.
    let agreed = negotiate(offer(6, 0xFF, 0x1F_FFFF), &wants).unwrap();
    assert!(!agreed.allows(Actions::SET_MACRO_LIST));
    assert!(agreed.macros.is_empty());
    assert_eq!(agreed.missing_actions, Actions::SET_MACRO_LIST);

    // Version 2 has no macro lists, whatever the actions say.
    let agreed = negotiate(POSTFIX_PROTOCOL_2, &wants).unwrap();
    assert!(!agreed.allows(Actions::SET_MACRO_LIST));
    assert!(agreed.macros.is_empty());

    // The encoded reply carries the lists.
    let agreed = negotiate(POSTFIX_3_7, &wants).unwrap();
    let mut wire = Vec::new();
    agreed.encode_reply(&mut wire).unwrap();
    assert!(wire.ends_with(b"\0\0\0\x03{rcpt_addr} i\0"));
}

#[test]
fn end_of_message_and_end_of_headers_lists_come_together() {
    // Sendmail uses a filter's EOM list only when an EOH list came too (§3.4).
    let agreed = negotiate(
        POSTFIX_3_7,
        &with_macros(&[(MacroStage::EndOfMessage, "{msg_id}")]),
    )
    .unwrap();
    assert_eq!(
        agreed.macros,
        owned(&[
            (MacroStage::EndOfMessage, "i {msg_id}"),
            (MacroStage::EndOfHeaders, "i")
        ])
    );
    let agreed = negotiate(
        POSTFIX_3_7,
        &with_macros(&[(MacroStage::EndOfHeaders, "{x}")]),
    )
    .unwrap();
    assert_eq!(
        agreed.macros,
        owned(&[
            (MacroStage::EndOfHeaders, "i {x}"),
            (MacroStage::EndOfMessage, "i")
        ])
    );
    let both = [
        (MacroStage::EndOfHeaders, "i a"),
        (MacroStage::EndOfMessage, "i b"),
    ];
    let agreed = negotiate(POSTFIX_3_7, &with_macros(&both)).unwrap();
    assert_eq!(agreed.macros, owned(&both));
    // Other stages alone pull in nothing.
    let agreed = negotiate(POSTFIX_3_7, &with_macros(&[(MacroStage::Connect, "j")])).unwrap();
    assert_eq!(agreed.macros.len(), 1);
}

/// A list replaces the MTA's default for its stage (§3.4), and the defaults carry the queue
/// id `i` from MAIL on (§5.7: Sendmail at MAIL, Postfix at MAIL to end of message), so
/// negotiation puts `i` back into lists for those stages, once.
#[test]
fn lists_from_mail_on_keep_the_queue_id() {
    use MacroStage::{Connect, Data, EndOfHeaders, EndOfMessage, Helo, Mail, Rcpt};
    // (declared, requested)
    let table: &[(Lists<'_>, Lists<'_>)] = &[
        // The reported case: `{auth_authen}` at MAIL lost `i` on Sendmail.
        (&[(Mail, "{auth_authen}")], &[(Mail, "i {auth_authen}")]),
        (&[(Rcpt, "{rcpt_addr}")], &[(Rcpt, "i {rcpt_addr}")]),
        (&[(Data, "{x} {y}")], &[(Data, "i {x} {y}")]),
        // Already named, bare, braced or after a comma (Sendmail's other separator): as is.
        (&[(Mail, "{auth_authen} i")], &[(Mail, "{auth_authen} i")]),
        (&[(Mail, "{i} {auth_type}")], &[(Mail, "{i} {auth_type}")]),
        (&[(Rcpt, "{rcpt_addr},i")], &[(Rcpt, "{rcpt_addr},i")]),
        // Names that merely contain an i are not the queue id.
        (&[(Mail, "{if_name} ii")], &[(Mail, "i {if_name} ii")]),
        // An empty list (Sendmail: no macros) becomes `i` alone at these stages.
        (&[(Data, "")], &[(Data, "i")]),
        // CONNECT and HELO have no queue id: untouched, empty lists included.
        (&[(Connect, "{client_addr}")], &[(Connect, "{client_addr}")]),
        (&[(Helo, "")], &[(Helo, "")]),
        // End of headers and end of message: each gets `i`, the partner list too.
        (
            &[(EndOfHeaders, "{x}"), (EndOfMessage, "{msg_id}")],
            &[(EndOfHeaders, "i {x}"), (EndOfMessage, "i {msg_id}")],
        ),
        // Several stages at once, in the order declared.
        (
            &[
                (Connect, "j"),
                (Mail, "{auth_authen}"),
                (Rcpt, "i {rcpt_addr}"),
            ],
            &[
                (Connect, "j"),
                (Mail, "i {auth_authen}"),
                (Rcpt, "i {rcpt_addr}"),
            ],
        ),
        // Declaring a stage twice adds to its one list; `i` is added once.
        (
            &[(Mail, "{auth_type}"), (Mail, "{auth_authen}")],
            &[(Mail, "i {auth_type} {auth_authen}")],
        ),
    ];
    for (declared, requested) in table {
        let wants = with_macros(declared);
        for mta in [POSTFIX_3_7, SENDMAIL_8_17] {
            let agreed = negotiate(mta, &wants).unwrap();
            assert_eq!(agreed.macros, owned(requested), "{declared:?}");
            async_milter::fuzzing::negotiate(&negotiate_input(mta, &wants));
        }
    }
}

#[test]
fn declared_macros_read_back_as_declared_one_list_per_stage() {
    let wants = Needs::new()
        .macros(MacroStage::Mail, "{auth_type}")
        .macros(MacroStage::Rcpt, "")
        .macros(MacroStage::Mail, "{auth_authen}")
        .macros(MacroStage::Rcpt, "{rcpt_addr}")
        .macros(MacroStage::Mail, "");
    assert_eq!(
        wants.get_macros(),
        owned(&[
            (MacroStage::Mail, "{auth_type} {auth_authen}"),
            (MacroStage::Rcpt, "{rcpt_addr}")
        ])
    );
}

/// Seeded random offers and needs: every reply obeys the rules (the `negotiate` fuzz body).
#[test]
fn random_offers_obey_the_rules() {
    let mut rng = Rng::new(0x0F_FE25);
    let versions = [0, 1, 2, 3, 4, 5, 6, 7, u32::MAX];
    for _ in 0..20_000 {
        let pick = |rng: &mut Rng, mask: u64| (rng.next_u64() & mask) as u32;
        let offer = OptNeg {
            version: versions[rng.below(versions.len())],
            actions: Actions::from_bits(if rng.below(8) == 0 {
                0
            } else {
                pick(&mut rng, 0x3FF)
            }),
            protocol: ProtocolFlags::from_bits(if rng.below(8) == 0 {
                0
            } else {
                pick(&mut rng, 0xFFFF_FFFF)
            }),
        };
        let mut wants = Needs::new()
            .actions(Actions::from_bits(if rng.below(2) == 0 {
                0
            } else {
                pick(&mut rng, 0x1FF)
            }))
            .optional_actions(Actions::from_bits(pick(&mut rng, 0x3FF)))
            .events(Events::from_bits(pick(&mut rng, 0x1FF)))
            .answers(Events::from_bits(pick(&mut rng, 0x1FF)))
            .options(ProtocolFlags::from_bits(pick(&mut rng, 0xFFFF_FFFF)));
        for _ in 0..rng.below(3) {
            let names = ["i {x}", "{x}", "", "{i}", "a,i", "{if_name}"][rng.below(6)];
            wants = wants.macros(MacroStage::ALL[rng.below(7)], names);
        }
        async_milter::fuzzing::negotiate(&negotiate_input(offer, &wants));
    }
}

/// The tables assume a filter that sees every event, UNKNOWN included.
fn every_event() -> Needs {
    Needs::everything().events(Events::ALL)
}

#[test]
fn everything_suppresses_unknown_commands() {
    let agreed = negotiate(OptNeg::VERSION_6, &Needs::everything()).unwrap();
    assert_eq!(
        agreed.options.protocol,
        ProtocolFlags::NO_UNKNOWN | ProtocolFlags::SKIP
    );
}

#[test]
fn new_asks_for_nothing() {
    let agreed = negotiate(OptNeg::VERSION_6, &Needs::new()).unwrap();
    assert_eq!(agreed.options.actions, Actions::EMPTY);
    // Every event suppressed; nothing left to mark no-reply, no extra options.
    let suppressed = Events::FLAGS
        .iter()
        .fold(ProtocolFlags::EMPTY, |all, &(_, no, _)| all | no);
    assert_eq!(agreed.options.protocol, suppressed);
    assert!(agreed.macros.is_empty());
    assert!(agreed.missing_actions.is_empty() && agreed.missing_options.is_empty());
    // End of message is still sent and answered.
    assert!(agreed.expects_reply(CommandKind::EndOfMessage));
}
