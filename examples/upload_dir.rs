//! The seed's TestUpload: upload every file of a directory, each under its
//! file name, plus `key for <name>` holding the name as a string.
//!
//! `cargo run --example upload_dir -- DIR [NODE]` (NODE defaults to
//! localhost:50140). Files stream: any size works in bounded memory.

use mydht_client::{Client, WriteOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: upload_dir DIR [NODE]")?;
    let node = args.next().unwrap_or_else(|| "localhost:50140".into());
    let client = Client::new([node])?;
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        client
            .put_file(&name, entry.path(), WriteOptions::default(), &|_| {})
            .await?;
        client.put(format!("key for {name}"), name.clone()).await?;
        println!("PUT OK {name}");
        count += 1;
    }
    println!("uploaded {count} files from {dir}");
    Ok(())
}
