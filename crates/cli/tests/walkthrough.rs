//! The seed README's walkthrough (sections 6, 6.1 and 6.3) with the real
//! binary: `python mydhtserver.py` is `mydht node`, `python mydhtclient.py`
//! is `mydht client`, and every step prints what the README shows. Ports are
//! picked by the system (`-p 0`) instead of 50140/50141.

mod common;

use common::*;

#[test]
fn the_seed_readme_walkthrough_works() {
    let dir = temp_dir();

    // 6. Running: one node; its status page shows a ring of one node with
    // 0 keys and size 0.
    let first = NodeProc::start(0, &dir.path().join("n1"), &[]);
    let page = status_page(&first.name);
    assert!(page.contains("The ring consists of 1 node "), "{page}");
    assert!(page.contains("Keys: 0 "), "{page}");
    assert!(page.contains("Size: 0 bytes"), "{page}");

    // 6.1 Adding more nodes: -p PORT -s HOST:PORT; both pages show 2.
    let second = NodeProc::start(0, &dir.path().join("n2"), &["-s", &first.name]);
    for node in [&first, &second] {
        let name = node.name.clone();
        wait_until("both nodes to list 2 members", || {
            status_page(&name).contains("The ring consists of 2 nodes")
        });
    }

    // 6.3 Interacting with the DHT.
    let port = first.port_arg();
    let put = client(&port, &["-c", "put", "-k", "mykey", "-val", "myvalue"]);
    assert_eq!(stdout(&put), "PUT OK mykey\n", "{}", stderr(&put));
    assert!(put.status.success());

    let file = dir.path().join("myfile.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&file, &data).expect("write myfile.bin");
    let put = client(
        &port,
        &[
            "-c",
            "put",
            "-k",
            "myfilekey",
            "-f",
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(stdout(&put), "PUT OK myfilekey\n", "{}", stderr(&put));

    // Read through the other node.
    let other = second.port_arg();
    let get = client(&other, &["-c", "get", "-k", "mykey"]);
    assert_eq!(stdout(&get), "myvalue", "{}", stderr(&get));
    assert!(get.status.success());

    let download = dir.path().join("myfile.bin.download");
    let get = client(
        &other,
        &[
            "-c",
            "get",
            "-k",
            "myfilekey",
            "-o",
            download.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(stdout(&get), "", "no output with -o");
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        std::fs::read(&download).expect("downloaded"),
        data,
        "diff finds nothing"
    );

    let del = client(&port, &["-c", "del", "-k", "myfilekey"]);
    assert_eq!(stdout(&del), "DEL OK myfilekey\n");

    // The status pages reflect it: one key left.
    let page = status_page(&second.name);
    assert!(page.contains("Keys: 1 "), "{page}");
}
