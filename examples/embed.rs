//! Embedding mydht in a Rust program: start a node in this process (in
//! memory, on a port the system picks) and use the client library against
//! it, as a program would against a real cluster.
//!
//! `cargo run --example embed`

use mydht_client::Client;
use mydht_node::NodeConfig;
use mydht_node::store::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = mydht_node::start(NodeConfig::new("127.0.0.1", 0), MemoryStore::new()).await?;
    println!("node {} is up", node.name());

    let client = Client::new([node.name().to_string()])?;
    let version = client.put("greeting", "hello, ring").await?;
    println!("stored greeting at {:?}", version.timestamp);

    let value = client.get("greeting").await?.ok_or("greeting vanished")?;
    println!("greeting = {}", String::from_utf8_lossy(&value.bytes));
    println!("lives on {:?}", client.whereis("greeting").await?);

    client.delete("greeting").await?;
    assert!(client.get("greeting").await?.is_none());
    println!("deleted");

    node.shutdown().await;
    Ok(())
}
