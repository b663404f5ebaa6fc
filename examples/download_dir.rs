//! The seed's TestDownload: for every file in an upload directory, download
//! the key of that name into a download directory, check the `key for
//! <name>` string, and compare the bytes.
//!
//! `cargo run --example download_dir -- UPLOAD_DIR DOWNLOAD_DIR [NODE]`
//! (NODE defaults to localhost:50140). Exits non-zero on any difference.

use mydht_client::{Client, ReadOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: download_dir UPLOAD_DIR DOWNLOAD_DIR [NODE]";
    let upload = args.next().ok_or(usage)?;
    let download = args.next().ok_or(usage)?;
    let node = args.next().unwrap_or_else(|| "localhost:50140".into());
    std::fs::create_dir_all(&download)?;
    let client = Client::new([node])?;
    let (mut same, mut different) = (0, 0);
    for entry in std::fs::read_dir(&upload)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let target = std::path::Path::new(&download).join(&name);
        let found = client
            .get_to_file(&name, &target, ReadOptions::default(), &|_| {})
            .await?;
        let label = client.get(format!("key for {name}")).await?;
        let ok = found.is_some()
            && label.is_some_and(|l| l.bytes == name.as_bytes())
            && std::fs::read(&target)? == std::fs::read(entry.path())?;
        if ok {
            same += 1;
        } else {
            different += 1;
            eprintln!("DIFFERENT {name}");
        }
    }
    println!("{same} files identical, {different} different");
    if different > 0 {
        std::process::exit(1);
    }
    Ok(())
}
