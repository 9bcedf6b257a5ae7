//! `examples/metrics`, run as its built binary: three messages through the test kit, then
//! the Prometheus page scraped over loopback HTTP (a GET written by hand on a `TcpStream`,
//! no HTTP client) and the library's counters checked against what was sent.
//!
//! Every wait ends as soon as what it waits for has happened and fails the test after a
//! bounded time; the example is killed when the test ends, passed or not.

mod built;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use async_milter::proto::Family;
use async_milter::testing::{Envelope, Profile, Reply, connect};
use built::example_path;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

const MESSAGE: &[u8] = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n";

/// The example process, killed when dropped.
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on now (the example binds it right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("its address").port()
}

/// Starts the example and returns it with its milter socket spec.
fn start(http_port: u16) -> (Example, String) {
    let mut child = Command::new(example_path("metrics"))
        .args(["inet:0@127.0.0.1", &http_port.to_string()])
        .env("RUST_LOG", "info")
        .env("RUST_LOG_STYLE", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting examples/metrics");
    let stderr = child.stderr.take().expect("piped stderr");
    let example = Example(child);
    let (sender, lines): (_, Receiver<String>) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no listening line ({e}); output: {seen:#?}"));
        if let Some(at) = line.find("listening on ") {
            let spec = line[at + "listening on ".len()..].trim().to_owned();
            // Keep draining stderr so the pipe never fills.
            std::thread::spawn(move || for _ in lines {});
            return (example, spec);
        }
        seen.push(line);
    }
}

/// `GET /metrics` over a plain TCP connection; the body, or `None` while nothing listens.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    stream.shutdown(Shutdown::Write).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "scrape answered {head}");
    // The exporter may answer in chunks; the metric lines survive de-chunking by hand.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(dechunk(body));
    }
    Some(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The samples of an exposition page: `(name, labels) -> value`.
fn samples(page: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut samples = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match key.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (key, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        if let Ok(value) = value.parse() {
            samples.insert((name.to_owned(), labels), value);
        }
    }
    samples
}

/// The value of `name` with exactly `labels`; 0 when absent.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples(page)
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

/// Whether a sample has the (integral) value expected.
fn is(got: f64, want: f64) -> bool {
    (got - want).abs() < 1e-9
}

/// Two connections: an accepted message and one with a refused recipient (Postfix), then
/// one refused at MAIL (Sendmail).
async fn send_sessions(spec: &str) {
    // Connection 1: an accepted message, then one with a refused recipient.
    let mut client = connect(spec, Profile::postfix()).await.expect("connect");
    client.negotiate().await.expect("negotiation");
    client
        .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
        .await
        .expect("CONNECT");
    client.helo("client.example.com").await.expect("HELO");
    let plain = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
    let outcome = client.send_message(&plain, MESSAGE).await.expect("sent");
    assert_eq!(outcome.verdict, Reply::Continue, "{outcome:?}");
    let refused = Envelope::new(
        "<alice@example.com>",
        &["<nobody@example.net>", "<bob@example.net>"],
    );
    let outcome = client.send_message(&refused, MESSAGE).await.expect("sent");
    assert!(outcome.rcpts[0].1.is_refusal(), "{outcome:?}");
    assert_eq!(outcome.verdict, Reply::Continue, "{outcome:?}");
    client.quit().await.expect("QUIT");

    // Connection 2: refused at MAIL.
    let mut client = connect(spec, Profile::sendmail()).await.expect("connect");
    client.negotiate().await.expect("negotiation");
    client
        .connect("client.example.com", Family::Inet, 50001, "192.0.2.2")
        .await
        .expect("CONNECT");
    client.helo("client.example.com").await.expect("HELO");
    let spam = Envelope::new("<spammer@example.org>", &["<bob@example.net>"]);
    let outcome = client.send_message(&spam, MESSAGE).await.expect("sent");
    assert!(outcome.mail.is_refusal(), "{outcome:?}");
    client.quit().await.expect("QUIT");
}

#[test]
fn the_example_exports_the_counters_of_what_it_served() {
    let http_port = free_port();
    let (_example, spec) = start(http_port);

    async_std::task::block_on(async {
        async_std::future::timeout(WAIT, send_sessions(&spec))
            .await
            .expect("sessions took too long");
    });

    // The gauge drops when the server has seen both QUITs; scrape until it has.
    let deadline = Instant::now() + WAIT;
    let page = loop {
        if let Some(page) = scrape(http_port) {
            let closed = is(value(&page, "milter_connections_total", &[]), 2.0)
                && is(value(&page, "milter_connections_open", &[]), 0.0);
            if closed || Instant::now() > deadline {
                break page;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no metrics page on port {http_port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let expect = |name: &str, labels: &[(&str, &str)], want: f64| {
        let got = value(&page, name, labels);
        assert!(
            is(got, want),
            "{name}{labels:?} = {got}, expected {want}; page:\n{page}"
        );
    };
    expect("milter_connections_total", &[], 2.0);
    expect("milter_connections_open", &[], 0.0);
    expect("milter_messages_total", &[], 3.0);
    expect(
        "milter_verdicts_total",
        &[("stage", "mail"), ("verdict", "reply_permanent")],
        1.0,
    );
    expect(
        "milter_verdicts_total",
        &[("stage", "eom"), ("verdict", "continue")],
        2.0,
    );
    expect(
        "milter_recipient_rejects_total",
        &[("verdict", "reply_permanent")],
        1.0,
    );
    expect("milter_edits_total", &[("kind", "add_header")], 2.0);
    expect("milter_filter_errors_total", &[], 0.0);
    expect(
        "milter_connection_errors_total",
        &[("kind", "protocol")],
        0.0,
    );
    // One reply per MAIL, three RCPT replies, two end-of-message replies, two OPTNEGs.
    expect(
        "milter_reply_duration_seconds_count",
        &[("stage", "mail")],
        3.0,
    );
    expect(
        "milter_reply_duration_seconds_count",
        &[("stage", "rcpt")],
        3.0,
    );
    expect(
        "milter_reply_duration_seconds_count",
        &[("stage", "eom")],
        2.0,
    );
    expect(
        "milter_reply_duration_seconds_count",
        &[("stage", "optneg")],
        2.0,
    );
}
