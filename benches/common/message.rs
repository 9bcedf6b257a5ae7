//! The message the load generators send (shared by the benchmarks): ten headers of an
//! ordinary message and a body of plain text lines.

/// The ten headers, with `X-Mailer: <mailer>` last.
pub(crate) fn sample_headers(mailer: &str) -> Vec<(String, String)> {
    [
        ("Received", " from client.example.com (client.example.com [192.0.2.1])\n\tby mx.example.net with ESMTP"),
        ("From", " Alice Example <alice@example.com>"),
        ("To", " Bob Example <bob@example.net>"),
        ("Subject", " Quarterly report"),
        ("Date", " Tue, 1 Apr 2025 10:00:00 +0000"),
        ("Message-ID", " <20250401100000.12345@example.com>"),
        ("MIME-Version", " 1.0"),
        ("Content-Type", " text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", " 8bit"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .chain([("X-Mailer".to_owned(), format!(" {mailer}"))])
    .collect()
}

/// `len` bytes of text lines.
pub(crate) fn sample_body(len: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    line.iter().copied().cycle().take(len).collect()
}
