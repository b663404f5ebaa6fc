//! A running mydht node.
//!
//! This crate will hold everything one node does at run time: the listener
//! that tells binary protocol from HTTP on one port, the coordinator that
//! replicates reads and writes over the ring, membership (join, leave,
//! remove, and later gossip and failure detection), anti-entropy, and the
//! HTTP status page, REST API and metrics. It does not parse command lines
//! (that is `mydht`) and embeds no client logic for other programs (that is
//! `mydht-client`). It arrives with the working-cluster issue; until then the
//! crate is empty on purpose.
