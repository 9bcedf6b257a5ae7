//! The automatic no-reply mode: the benchmark filter as a tagger that answers nothing before
//! end of message and declares no answers and no flags (`examples/bench.rs --no-reply`), so
//! the library derives every no-reply flag itself; compared with the wire floor negotiating
//! the same flags.

use super::{Binaries, Results, Server, ServerKind, Workload, fmt_num, open, stat};

/// The no-reply rate the library should reach, as a share of the no-reply wire floor's.
pub(super) const TARGET: f64 = 0.8;

/// The protocol flags each no-reply server negotiates with the load generator's Postfix
/// offer, read from one connection before the runs.
pub(super) fn negotiated(
    servers: &[ServerKind],
    bins: &Binaries,
    cpu: usize,
) -> Vec<(ServerKind, String)> {
    servers
        .iter()
        .filter(|s| s.no_reply)
        .map(|&kind| {
            let flags = Server::start(kind, bins, cpu).and_then(|server| {
                let addr = server.addr;
                let agreed = async_std::task::block_on(async move {
                    let mut client = open(addr).await?;
                    let flags = client.negotiated().map(|n| n.protocol);
                    client.quit().await?;
                    Ok::<_, super::BoxError>(flags)
                });
                server.stop();
                agreed
            });
            let text = match flags {
                Ok(Some(flags)) => format!("{flags:?}"),
                Ok(None) => "not negotiated".to_owned(),
                Err(error) => format!("failed: {error}"),
            };
            (kind, text)
        })
        .collect()
}

/// Appends the section to `out`: the negotiated flags, then the rates beside the floor's.
pub(super) fn table(
    out: &mut String,
    results: &Results,
    workloads: &[Workload],
    negotiated: &[(ServerKind, String)],
) {
    let ours = ServerKind {
        imp: super::Impl::Ours,
        no_reply: true,
    };
    let rate = |wl, kind: ServerKind| {
        results
            .get(&(wl, kind))
            .filter(|s| !s.is_empty())
            .map(|s| stat(s, |x| x.rate).median)
    };
    let rows: Vec<String> = workloads
        .iter()
        .filter(|&&wl| wl != Workload::W5)
        .filter_map(|&wl| {
            let library = rate(wl, ours)?;
            let floor = rate(wl, ours.floor())?;
            let ratio = library / floor;
            let verdict = if ratio >= TARGET { "met" } else { "missed" };
            Some(format!(
                "| {wl:?} | {} | {} | {ratio:.2} | {verdict} |",
                fmt_num(library),
                fmt_num(floor)
            ))
        })
        .collect();
    if rows.is_empty() && negotiated.is_empty() {
        return;
    }
    let mut lines = vec![
        String::new(),
        "### Automatic no-reply: a tagger that answers nothing before end of message".to_owned(),
        String::new(),
        "The filter declares the events it reads and the header it adds, no answers and no protocol flags; the no-reply flags below are what the library derived from that. The wire floor and libmilter ask for the same flags by hand.".to_owned(),
        String::new(),
    ];
    for (kind, flags) in negotiated {
        lines.push(format!("- {}: {flags}", kind.name()));
    }
    let same = negotiated.windows(2).all(|w| w[0].1 == w[1].1);
    if negotiated.len() > 1 && !same {
        lines
            .push("- **the servers negotiated different flags**: the comparison is off".to_owned());
    }
    if !rows.is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "| workload | async-milter no-reply msgs/s | wire floor no-reply msgs/s | × floor | target ≥ {TARGET:.2} |"
        ));
        lines.push("|---|---|---|---|---|".to_owned());
        lines.extend(rows);
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
}
