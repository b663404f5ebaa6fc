//! The binary protocol from outside: bad input (a key over the limit, an
//! unknown request kind, garbage) gets a typed error and harms nothing
//! else.

mod common;

use common::{Cluster, put_request, raw};
use mydht_client::ClientError;
use mydht_proto::{ErrorReply, Response, WriteId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors() {
    let cluster = Cluster::start(1, 3).await;
    let c = cluster.client(0);
    let long_key = "k".repeat(2000);
    let err = c.put(&long_key, "v").await.expect_err("key over 1 KiB");
    assert!(
        matches!(err, ClientError::Invalid(ErrorReply::TooLarge { .. })),
        "{err:?}"
    );
    // The node enforces it too, whatever the client does.
    let conn = raw(&cluster.names[0]).await;
    let reply = conn
        .call(put_request(
            &long_key,
            "v",
            WriteId { client: 1, seq: 1 },
            None,
        ))
        .await
        .expect("answered");
    assert!(
        matches!(reply, Response::Error(ErrorReply::TooLarge { .. })),
        "{reply:?}"
    );
    // The connection and node survive all of this.
    c.put("after", "ok").await.expect("still serving");
    cluster.shutdown().await;
}
