//! Socket specs as Postfix and Sendmail configurations write them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a milter listens.
///
/// Accepted forms: `inet:PORT@HOST` and `inet6:PORT@HOST` (Sendmail and libmilter; without
/// `@HOST` every interface), `inet:HOST:PORT` (Postfix), `unix:/path` and `local:/path`,
/// a bare `/path`, and plain `HOST:PORT` or `[V6]:PORT`. `systemd` and `systemd:NAME` serve
/// on a socket passed by systemd (see [socket activation](super#socket-activation)).
///
/// ```
/// use async_milter::server::SocketSpec;
///
/// let spec: SocketSpec = "inet:7357@127.0.0.1".parse()?;
/// assert_eq!(spec.to_string(), "inet:7357@127.0.0.1");
/// let spec: SocketSpec = "unix:/run/milter.sock".parse()?;
/// assert_eq!(spec.to_string(), "unix:/run/milter.sock");
/// let spec: SocketSpec = "systemd:milter".parse()?;
/// assert_eq!(spec, SocketSpec::Systemd(Some("milter".to_owned())));
/// # Ok::<(), async_milter::server::SpecError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SocketSpec {
    /// A TCP socket.
    Inet(SocketAddr),
    /// A unix-domain socket at a path.
    Unix(PathBuf),
    /// A socket passed by systemd: the only one (`systemd`), or the one whose
    /// `FileDescriptorName=` is the name (`systemd:NAME`).
    Systemd(Option<String>),
}

/// A socket spec that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid socket spec {:?}: expected inet:PORT@HOST, inet6:PORT@HOST, unix:/path, HOST:PORT or systemd[:NAME]",
            self.0
        )
    }
}

impl std::error::Error for SpecError {}

impl FromStr for SocketSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let error = || SpecError(spec.to_owned());
        let host = |text: &str, v6: bool| -> Result<IpAddr, SpecError> {
            let text = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            match text {
                "" | "*" if v6 => Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                "" | "*" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                "localhost" if v6 => Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                _ => text.parse().map_err(|_| error()),
            }
        };
        let port = |text: &str| text.parse::<u16>().map_err(|_| error());
        if let Some(path) = spec
            .strip_prefix("unix:")
            .or_else(|| spec.strip_prefix("local:"))
        {
            if path.is_empty() {
                return Err(error());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if spec == "systemd" {
            return Ok(Self::Systemd(None));
        }
        if let Some(name) = spec.strip_prefix("systemd:") {
            // systemd refuses a colon in FileDescriptorName=: LISTEN_FDNAMES separates by it.
            if name.is_empty() || name.contains(':') {
                return Err(error());
            }
            return Ok(Self::Systemd(Some(name.to_owned())));
        }
        if spec.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(spec)));
        }
        let (rest, v6) = if let Some(rest) = spec.strip_prefix("inet6:") {
            (rest, true)
        } else if let Some(rest) = spec.strip_prefix("inet:") {
            (rest, false)
        } else {
            return spec
                .parse::<SocketAddr>()
                .map(Self::Inet)
                .map_err(|_| error());
        };
        if let Some((p, h)) = rest.split_once('@') {
            return Ok(Self::Inet(SocketAddr::new(host(h, v6)?, port(p)?)));
        }
        if let Ok(p) = rest.parse::<u16>() {
            return Ok(Self::Inet(SocketAddr::new(host("", v6)?, p)));
        }
        // Postfix writes inet:HOST:PORT.
        let (h, p) = rest.rsplit_once(':').ok_or_else(error)?;
        Ok(Self::Inet(SocketAddr::new(host(h, v6)?, port(p)?)))
    }
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet(SocketAddr::V4(addr)) => write!(f, "inet:{}@{}", addr.port(), addr.ip()),
            Self::Inet(SocketAddr::V6(addr)) => write!(f, "inet6:{}@{}", addr.port(), addr.ip()),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Systemd(None) => f.write_str("systemd"),
            Self::Systemd(Some(name)) => write!(f, "systemd:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_config_form() {
        let table = [
            (
                "inet:7357@127.0.0.1",
                SocketSpec::Inet(inet("127.0.0.1:7357")),
            ),
            ("inet:7357", SocketSpec::Inet(inet("0.0.0.0:7357"))),
            (
                "inet:7357@localhost",
                SocketSpec::Inet(inet("127.0.0.1:7357")),
            ),
            ("inet6:7357@::1", SocketSpec::Inet(inet("[::1]:7357"))),
            ("inet6:7357@[::1]", SocketSpec::Inet(inet("[::1]:7357"))),
            ("inet6:7357", SocketSpec::Inet(inet("[::]:7357"))),
            (
                "inet:127.0.0.1:7357",
                SocketSpec::Inet(inet("127.0.0.1:7357")),
            ),
            ("127.0.0.1:7357", SocketSpec::Inet(inet("127.0.0.1:7357"))),
            ("[::1]:7357", SocketSpec::Inet(inet("[::1]:7357"))),
            ("unix:/run/m.sock", SocketSpec::Unix("/run/m.sock".into())),
            ("local:/run/m.sock", SocketSpec::Unix("/run/m.sock".into())),
            ("/run/m.sock", SocketSpec::Unix("/run/m.sock".into())),
            ("systemd", SocketSpec::Systemd(None)),
            ("systemd:milter", SocketSpec::Systemd(Some("milter".into()))),
        ];
        for (text, expected) in table {
            assert_eq!(text.parse::<SocketSpec>(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_specs() {
        for bad in [
            "",
            "inet:",
            "inet:x@127.0.0.1",
            "inet:70000@127.0.0.1",
            "unix:",
            "tcp:1@h",
            "inet:1@nohost",
            "systemd:",
            "systemd:a:b",
            "systemd-milter",
        ] {
            assert!(bad.parse::<SocketSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "inet:7357@127.0.0.1",
            "inet6:7357@::1",
            "unix:/run/m.sock",
            "systemd",
            "systemd:milter",
        ] {
            assert_eq!(text.parse::<SocketSpec>().unwrap().to_string(), text);
        }
    }
}
