//! Flag sets exchanged in option negotiation: actions (`SMFIF_*`) and protocol options (`SMFIP_*`).

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not, Sub};

/// Defines a `u32` flag newtype with named constants, set operations and a Debug that prints names.
macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$cmeta:meta])* $flag:ident = $value:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u32);

        impl $name {
            $( $(#[$cmeta])* pub const $flag: Self = Self($value); )*

            /// Every flag this library knows by name.
            pub const KNOWN: Self = Self(0 $(| $value)*);
            /// The empty set.
            pub const EMPTY: Self = Self(0);

            const NAMES: &'static [(&'static str, u32)] = &[$((stringify!($flag), $value)),*];

            /// Builds the set from its wire value; unknown bits are kept.
            #[must_use]
            pub const fn from_bits(bits: u32) -> Self {
                Self(bits)
            }

            /// The wire value.
            #[must_use]
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every flag of `other` is set in `self`.
            #[must_use]
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any flag of `other` is set in `self`.
            #[must_use]
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// Whether no flag is set.
            #[must_use]
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The union of both sets.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// The flags set in both.
            #[must_use]
            pub const fn intersection(self, other: Self) -> Self {
                Self(self.0 & other.0)
            }

            /// The flags of `self` that are not in `other`.
            #[must_use]
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }
        }

        impl BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                self.union(rhs)
            }
        }

        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }

        impl BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                self.intersection(rhs)
            }
        }

        impl Sub for $name {
            type Output = Self;
            fn sub(self, rhs: Self) -> Self {
                self.difference(rhs)
            }
        }

        impl Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut rest = self.0;
                let mut first = true;
                write!(f, "{}(", stringify!($name))?;
                for &(name, value) in Self::NAMES {
                    if value != 0 && rest & value == value {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(name)?;
                        first = false;
                        rest &= !value;
                    }
                }
                if rest != 0 {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{rest:#x}")?;
                    first = false;
                }
                if first {
                    f.write_str("empty")?;
                }
                f.write_str(")")
            }
        }
    };
}

flag_set! {
    /// Modifications the filter may make (`SMFIF_*`). The MTA offers a set; the filter picks a subset.
    Actions {
        /// Add and insert headers (`SMFIF_ADDHDRS`).
        ADD_HEADERS = 0x001;
        /// Replace the body (`SMFIF_CHGBODY`).
        CHANGE_BODY = 0x002;
        /// Add recipients (`SMFIF_ADDRCPT`).
        ADD_RCPT = 0x004;
        /// Remove recipients (`SMFIF_DELRCPT`).
        DELETE_RCPT = 0x008;
        /// Change and delete headers (`SMFIF_CHGHDRS`).
        CHANGE_HEADERS = 0x010;
        /// Quarantine the message (`SMFIF_QUARANTINE`).
        QUARANTINE = 0x020;
        /// Change the envelope sender (`SMFIF_CHGFROM`, version 6).
        CHANGE_FROM = 0x040;
        /// Add recipients with ESMTP arguments (`SMFIF_ADDRCPT_PAR`, version 6).
        ADD_RCPT_WITH_ARGS = 0x080;
        /// Request macro lists in the negotiation reply (`SMFIF_SETSYMLIST`, version 6).
        SET_MACRO_LIST = 0x100;
    }
}

flag_set! {
    /// Protocol options (`SMFIP_*`): events to leave out, events not answered, extra behaviour.
    ProtocolFlags {
        /// Do not send CONNECT (`SMFIP_NOCONNECT`).
        NO_CONNECT = 0x0000_0001;
        /// Do not send HELO (`SMFIP_NOHELO`).
        NO_HELO = 0x0000_0002;
        /// Do not send MAIL (`SMFIP_NOMAIL`).
        NO_MAIL = 0x0000_0004;
        /// Do not send RCPT (`SMFIP_NORCPT`).
        NO_RCPT = 0x0000_0008;
        /// Do not send BODY (`SMFIP_NOBODY`).
        NO_BODY = 0x0000_0010;
        /// Do not send HEADER (`SMFIP_NOHDRS`).
        NO_HEADER = 0x0000_0020;
        /// Do not send EOH (`SMFIP_NOEOH`).
        NO_EOH = 0x0000_0040;
        /// The filter does not answer HEADER (`SMFIP_NR_HDR`).
        NR_HEADER = 0x0000_0080;
        /// Do not send UNKNOWN (`SMFIP_NOUNKNOWN`, version 3).
        NO_UNKNOWN = 0x0000_0100;
        /// Do not send DATA (`SMFIP_NODATA`, version 4).
        NO_DATA = 0x0000_0200;
        /// The filter may answer BODY with SKIP (`SMFIP_SKIP`).
        SKIP = 0x0000_0400;
        /// Also send recipients the MTA rejected (`SMFIP_RCPT_REJ`).
        RCPT_REJECTED = 0x0000_0800;
        /// The filter does not answer CONNECT (`SMFIP_NR_CONN`).
        NR_CONNECT = 0x0000_1000;
        /// The filter does not answer HELO (`SMFIP_NR_HELO`).
        NR_HELO = 0x0000_2000;
        /// The filter does not answer MAIL (`SMFIP_NR_MAIL`).
        NR_MAIL = 0x0000_4000;
        /// The filter does not answer RCPT (`SMFIP_NR_RCPT`).
        NR_RCPT = 0x0000_8000;
        /// The filter does not answer DATA (`SMFIP_NR_DATA`).
        NR_DATA = 0x0001_0000;
        /// The filter does not answer UNKNOWN (`SMFIP_NR_UNKN`).
        NR_UNKNOWN = 0x0002_0000;
        /// The filter does not answer EOH (`SMFIP_NR_EOH`).
        NR_EOH = 0x0004_0000;
        /// The filter does not answer BODY (`SMFIP_NR_BODY`).
        NR_BODY = 0x0008_0000;
        /// Header values keep their leading space (`SMFIP_HDR_LEADSPC`).
        HEADER_LEADING_SPACE = 0x0010_0000;
        /// Payloads up to 256 KiB (`SMFIP_MDS_256K`, only in builds with MDS negotiation).
        MAX_DATA_256K = 0x1000_0000;
        /// Payloads up to 1 MiB (`SMFIP_MDS_1M`, only in builds with MDS negotiation).
        MAX_DATA_1M = 0x2000_0000;
    }
}

flag_set! {
    /// Events a filter can see: each maps to one command and to its `NO_*` and `NR_*` flags.
    Events {
        /// CONNECT.
        CONNECT = 0x001;
        /// HELO or EHLO.
        HELO = 0x002;
        /// MAIL FROM.
        MAIL = 0x004;
        /// RCPT TO.
        RCPT = 0x008;
        /// DATA.
        DATA = 0x010;
        /// Each header.
        HEADER = 0x020;
        /// End of headers.
        EOH = 0x040;
        /// Each body chunk.
        BODY = 0x080;
        /// Unknown SMTP commands.
        UNKNOWN = 0x100;
    }
}

impl Events {
    /// Every event.
    pub const ALL: Self = Self::KNOWN;

    /// Each event with the flag that suppresses it and the flag that says it gets no reply.
    pub const FLAGS: [(Self, ProtocolFlags, ProtocolFlags); 9] = [
        (
            Self::CONNECT,
            ProtocolFlags::NO_CONNECT,
            ProtocolFlags::NR_CONNECT,
        ),
        (Self::HELO, ProtocolFlags::NO_HELO, ProtocolFlags::NR_HELO),
        (Self::MAIL, ProtocolFlags::NO_MAIL, ProtocolFlags::NR_MAIL),
        (Self::RCPT, ProtocolFlags::NO_RCPT, ProtocolFlags::NR_RCPT),
        (Self::DATA, ProtocolFlags::NO_DATA, ProtocolFlags::NR_DATA),
        (
            Self::HEADER,
            ProtocolFlags::NO_HEADER,
            ProtocolFlags::NR_HEADER,
        ),
        (Self::EOH, ProtocolFlags::NO_EOH, ProtocolFlags::NR_EOH),
        (Self::BODY, ProtocolFlags::NO_BODY, ProtocolFlags::NR_BODY),
        (
            Self::UNKNOWN,
            ProtocolFlags::NO_UNKNOWN,
            ProtocolFlags::NR_UNKNOWN,
        ),
    ];
}

impl Actions {
    /// The actions of protocol version 1 (`SMFI_V1_ACTS`), assumed when an MTA offers none.
    pub const V1: Self = Self(0x0F);
    /// The actions of protocol version 2 (`SMFI_V2_ACTS`).
    pub const V2: Self = Self(0x3F);
    /// Every action of protocol version 6 (`SMFI_CURR_ACTS`).
    pub const V6: Self = Self(0x1FF);
}

impl ProtocolFlags {
    /// The options of protocol version 1 (`SMFI_V1_PROT`), assumed when an MTA offers none.
    pub const V1: Self = Self(0x3F);
    /// The options of protocol version 2 (`SMFI_V2_PROT`).
    pub const V2: Self = Self(0x7F);
    /// Every option of protocol version 6 (`SMFI_CURR_PROT`).
    pub const V6: Self = Self(0x001F_FFFF);
}

#[cfg(test)]
mod tests {
    use super::{Actions, ProtocolFlags};

    #[test]
    fn debug_names_known_bits_and_keeps_unknown_ones() {
        let flags = ProtocolFlags::NO_HELO | ProtocolFlags::from_bits(0x4000_0000);
        assert_eq!(format!("{flags:?}"), "ProtocolFlags(NO_HELO | 0x40000000)");
        assert_eq!(format!("{:?}", Actions::EMPTY), "Actions(empty)");
    }

    #[test]
    fn known_covers_the_version_6_sets() {
        assert!(Actions::KNOWN.contains(Actions::V6));
        assert!(ProtocolFlags::KNOWN.contains(ProtocolFlags::V6));
        assert_eq!(Actions::V6.bits(), 0x1FF);
        assert_eq!(ProtocolFlags::V6.bits(), 0x1F_FFFF);
    }
}
