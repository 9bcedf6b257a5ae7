//! The README filter on tokio: `Server::bind` in a `#[tokio::main]` program, no shims.

include!("../../filter.rs");

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".into());
    let server = Server::bind(&spec).await?;
    println!("listening {}", server.local_spec());
    server.serve(tag_external).await
}
