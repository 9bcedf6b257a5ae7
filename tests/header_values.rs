//! Header values mean the same whether or not `HEADER_LEADING_SPACE` was negotiated: read
//! values lose the separator space either way, written values get it either way, and
//! `HeaderField::write_raw` gives the field back as it stands in the message.

use std::sync::{Arc, Mutex};

use async_milter::proto::{Actions, Events, ProtocolFlags};
use async_milter::testing::{Envelope, Profile, Reply, in_process};
use async_milter::{Error, FnFilter, Needs, Session, Verdict, filter_fn};

const MESSAGE: &[u8] =
    b"Subject:  two spaces\r\nX-Folded: first\r\n\tsecond\r\nX-Tight:none\r\n\r\nbody\r\n";

/// What the filter saw: each header's value and its raw form.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn recorder(leading_space: bool, seen: Seen) -> impl async_milter::Filter {
    let options = if leading_space {
        ProtocolFlags::HEADER_LEADING_SPACE
    } else {
        ProtocolFlags::EMPTY
    };
    let needs = Needs::new()
        .events(Events::HEADER | Events::EOH)
        .actions(Actions::ADD_HEADERS)
        .options(options);
    let function = filter_fn(move |session: &mut Session| {
        let seen = seen.clone();
        Box::pin(async move {
            while let Some(field) = session.next_header().await? {
                let mut raw = Vec::new();
                field.write_raw(&mut raw);
                let value = field.value.to_str().unwrap_or_default().to_owned();
                seen.lock().unwrap().push((value, raw));
            }
            session.end_of_message().await?;
            session.add_header("X-Added", "3")?;
            Ok::<_, Error>(Verdict::Accept)
        })
    });
    FnFilter::new(function).with_needs(needs)
}

async fn run(leading_space: bool, profile: Profile) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let seen = Seen::default();
    let mut client = in_process(recorder(leading_space, seen.clone()), profile).unwrap();
    let negotiated = client.negotiate().await.unwrap();
    assert_eq!(
        negotiated
            .protocol
            .contains(ProtocolFlags::HEADER_LEADING_SPACE),
        leading_space
    );
    let envelope = Envelope::new("<a@example.com>", &["<b@example.net>"]);
    let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Accept);
    let delivered = outcome.delivered.unwrap().to_bytes();
    let seen = seen.lock().unwrap().clone();
    (seen, delivered)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[async_std::test]
async fn values_read_and_written_the_same_either_way() {
    for profile in [Profile::postfix(), Profile::sendmail()] {
        let (plain, plain_delivered) = run(false, profile.clone()).await;
        let (exact, exact_delivered) = run(true, profile).await;
        let values = |seen: &[(String, Vec<u8>)]| -> Vec<String> {
            seen.iter().map(|(v, _)| v.clone()).collect()
        };
        assert_eq!(
            values(&plain),
            vec![" two spaces", "first\n\tsecond", "none"]
        );
        assert_eq!(values(&plain), values(&exact));
        for delivered in [&plain_delivered, &exact_delivered] {
            assert!(
                contains(delivered, b"\r\nX-Added: 3\r\n"),
                "{}",
                String::from_utf8_lossy(delivered)
            );
        }
        // Raw fields: exact with leading space negotiated; with one space otherwise.
        let raws = |seen: &[(String, Vec<u8>)]| -> Vec<Vec<u8>> {
            seen.iter().map(|(_, r)| r.clone()).collect()
        };
        assert_eq!(
            raws(&exact),
            vec![
                b"Subject:  two spaces\r\n".to_vec(),
                b"X-Folded: first\r\n\tsecond\r\n".to_vec(),
                b"X-Tight:none\r\n".to_vec(),
            ]
        );
        assert_eq!(raws(&plain)[2], b"X-Tight: none\r\n".to_vec());
        assert_eq!(raws(&plain)[..2], raws(&exact)[..2]);
    }
}
