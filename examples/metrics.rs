//! A small policy filter whose metrics are scraped by Prometheus.
//!
//! The library records its metrics through the `metrics` facade (feature `metrics`; see the
//! `async_milter::metrics` module for every name and label); this program installs
//! `metrics-exporter-prometheus`, which serves them on `http://127.0.0.1:PORT/metrics`.
//!
//! The filter refuses mail from `<spammer@…>` at MAIL (`550 5.7.1 sender refused`),
//! refuses the recipient `<nobody@…>` (`550 5.1.1 no such user`) while the others go on,
//! and adds `X-Scanned: metrics-example` to every message it lets through.
//!
//! Run: `cargo run --example metrics [SOCKET] [HTTP_PORT]` (defaults
//! `inet:7357@127.0.0.1` and 9187; the HTTP listener is on loopback only), then
//! `curl -s http://127.0.0.1:9187/metrics | grep milter_`.

use std::net::{Ipv4Addr, SocketAddr};

use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};
use metrics_exporter_prometheus::PrometheusBuilder;

async fn policy(session: &mut Session) -> Result<Verdict, Error> {
    let from = session.envelope_from().await?;
    let spammer = from
        .bare()
        .is_some_and(|a| a.to_ascii_lowercase().starts_with("spammer@"));
    if spammer {
        return Ok(Verdict::Reply(ReplyCode::permanent(
            550,
            "5.7.1",
            "sender refused",
        )?));
    }
    while let Some(rcpt) = session.next_recipient().await? {
        let nobody = rcpt
            .envelope()
            .bare()
            .is_some_and(|a| a.to_ascii_lowercase().starts_with("nobody@"));
        if nobody {
            rcpt.reply(ReplyCode::permanent(550, "5.1.1", "no such user")?)?;
        }
    }
    session.add_header("X-Scanned", "metrics-example")?;
    Ok(Verdict::Continue)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let spec = args
        .next()
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    let port: u16 = args.next().map_or(Ok(9187), |p| p.parse())?;
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Outside a tokio runtime the exporter runs its HTTP listener on a thread of its own.
    PrometheusBuilder::new()
        .with_http_listener(http)
        .install()?;
    log::info!("metrics on http://{http}/metrics");

    let needs = Needs::new()
        .events(Events::MAIL | Events::RCPT)
        .answers(Events::MAIL | Events::RCPT)
        .actions(Actions::ADD_HEADERS);
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(
                FnFilter::new(policy).with_needs(needs),
                termination_signal(),
            )
            .await
    })?;
    Ok(())
}
