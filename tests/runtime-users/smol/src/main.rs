//! The README filter on smol: `Server::bind` under `smol::block_on`, no shims.

include!("../../filter.rs");

fn main() -> std::io::Result<()> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".into());
    smol::block_on(async {
        let server = Server::bind(&spec).await?;
        println!("listening {}", server.local_spec());
        server.serve(tag_external).await
    })
}
