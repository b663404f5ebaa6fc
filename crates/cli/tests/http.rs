//! HTTP on a real node with curl, as a user would drive it: the REST API
//! (PUT with -T, GET, HEAD, DELETE then 404), the seed's `GET /KEY` links,
//! and the status page's key table. A 50 MiB random file goes in through
//! one node with curl and comes back byte-identical from another.

mod common;

use std::process::Command;

use common::*;

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl runs (the CI script installs it)")
}

#[test]
fn the_rest_api_serves_raw_bytes_both_ways() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let b = NodeProc::start(0, &dir.path().join("b"), &["-s", &a.name]);
    wait_until("two members", || ring_size(&a.name) == 2);
    let data = random_bytes(50 << 20, 0x1234_5678_9abc_def0);
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).expect("write");
    let url_a = format!("http://{}/v1/kv/big%20file.bin", a.name);
    let url_b = format!("http://{}/v1/kv/big%20file.bin", b.name);

    let o = curl(&["-T", src.to_str().expect("utf-8"), &url_a]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "PUT OK big file.bin\n",
        "{o:?}"
    );

    let dst = dir.path().join("back.bin");
    let o = curl(&["-f", "-o", dst.to_str().expect("utf-8"), &url_b]);
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::read(&dst).expect("read") == data, "bytes differ");

    // HEAD: the size, the version as ETag, Last-Modified.
    let o = curl(&["-I", &url_b]);
    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    assert!(head.contains("etag: \""), "{head}");
    assert!(head.contains("last-modified: "), "{head}");

    // The CLI reads what curl wrote, and the other way round.
    let via_cli = dir.path().join("cli.bin");
    let out = mydht(&[
        "get",
        "big file.bin",
        "-o",
        via_cli.to_str().expect("utf-8"),
        "-h",
        "127.0.0.1",
        "-p",
        &a.port_arg(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&via_cli).expect("read") == data);
    let o = mydht(&[
        "put",
        "small",
        "hello",
        "-h",
        "127.0.0.1",
        "-p",
        &a.port_arg(),
    ]);
    assert!(o.status.success());
    let o = curl(&[&format!("http://{}/v1/kv/small", b.name)]);
    assert_eq!(o.stdout, b"hello");

    // The seed's download link, and the status page's key table.
    let o = curl(&[&format!("http://{}/small", b.name)]);
    assert_eq!(o.stdout, b"hello");
    let page = status_page(&a.name);
    assert!(page.contains("href=\"/v1/kv/big%20file%2Ebin\""), "{page}");
    assert!(page.contains("Keys: 2 "), "{page}");

    // DELETE, then 404 from every node.
    let o = curl(&["-X", "DELETE", &url_a]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "DEL OK big file.bin\n");
    for url in [&url_a, &url_b] {
        let o = curl(&["-o", "/dev/null", "-w", "%{http_code}", url]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "404");
    }
    // A key over the limit is a 400-class answer, not a crash.
    let long = format!("http://{}/v1/kv/{}", a.name, "k".repeat(2000));
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-T",
        src.to_str().expect("utf-8"),
        &long,
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "413");
}

/// The ETag of `url` (the version), from a HEAD.
fn etag(url: &str) -> String {
    let o = curl(&["-I", url]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .starts_with("etag:")
                .then(|| l[5..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no etag: {o:?}"))
}

#[test]
fn an_idempotency_key_makes_a_retried_put_or_delete_one_write() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let url = format!("http://{}/v1/kv/once", a.name);
    let put = |body: &str, key: Option<&str>| {
        let header = key.map(|k| format!("Idempotency-Key: {k}"));
        let mut args = vec!["-X", "PUT", "--data-binary", body];
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        args.push(&url);
        curl(&args)
    };
    let o = put("first", Some("retry-1"));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PUT OK once\n", "{o:?}");
    let first = etag(&url);
    // The retry (even with another body) is the same write: same version,
    // the first value.
    let o = put("second", Some("retry-1"));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PUT OK once\n", "{o:?}");
    assert_eq!(etag(&url), first);
    assert_eq!(curl(&[&url]).stdout, b"first");
    // Another key, or none, is a new write.
    put("third", Some("retry-2"));
    assert_ne!(etag(&url), first);
    assert_eq!(curl(&[&url]).stdout, b"third");
    // A bad key is refused.
    let long = "k".repeat(300);
    let o = put("x", Some(&long));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Idempotency-Key"),
        "{o:?}"
    );
    // A delete retried after a later write does not delete it again.
    let del = |key: &str| {
        let h = format!("Idempotency-Key: {key}");
        curl(&["-X", "DELETE", "-H", &h, &url])
    };
    assert_eq!(
        String::from_utf8_lossy(&del("del-1").stdout),
        "DEL OK once\n"
    );
    put("after", None);
    del("del-1");
    assert_eq!(
        curl(&[&url]).stdout,
        b"after",
        "the retried delete wrote nothing"
    );
}
