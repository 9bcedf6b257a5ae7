//! Decodes the worked example session from the protocol reference and prints each packet.
//!
//! Run: `cargo run --example decode_session`

use async_milter::proto::{Command, FrameDecoder, Response};

/// MTA → filter packets of a small session, as they travel on the wire.
const MTA_BYTES: &[u8] = b"\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff\
\0\0\0\x13DCj\0mx.example.net\0\
\0\0\0\x21Cclient.example.com\0\x34\xc3\x50192.0.2.1\0\
\0\0\0\x14Hclient.example.com\0\
\0\0\0\x23M<alice@example.com>\0BODY=8BITMIME\0\
\0\0\0\x13R<bob@example.net>\0\
\0\0\0\x0cLSubject\0Hi\0\
\0\0\0\x01N\
\0\0\0\x08BHello\r\n\
\0\0\0\x01E\
\0\0\0\x01Q";

/// Filter → MTA packets of the same session.
const FILTER_BYTES: &[u8] = b"\0\0\0\x0dO\0\0\0\x06\0\0\0\x01\0\0\x03\0\
\0\0\0\x01c\0\0\0\x01c\0\0\0\x01c\0\0\0\x01c\0\0\0\x01c\0\0\0\x01c\0\0\0\x01c\
\0\0\0\x10hX-Filtered\0yes\0\
\0\0\0\x01a";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut mta = FrameDecoder::new();
    mta.push(MTA_BYTES);
    while let Some(frame) = mta.decode()? {
        println!("MTA    -> filter  {:?}", Command::decode_frame(&frame)?);
    }
    let mut filter = FrameDecoder::new();
    filter.push(FILTER_BYTES);
    while let Some(frame) = filter.decode()? {
        println!("filter -> MTA     {:?}", Response::decode_frame(&frame)?);
    }
    Ok(())
}
